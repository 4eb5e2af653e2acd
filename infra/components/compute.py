"""ComputeCluster component: an AmlCompute cluster that pulls from the registry by identity.

The cluster runs as a user-assigned managed identity holding AcrPull on the container registry
(scoped to the registry only), so it pulls the training image without any password, and Key Vault
Secrets User on the workspace's key vault: Azure ML compute reads datastore credentials from the
workspace key vault with the cluster's identity, and the vault uses Azure RBAC (no access
policies), so the role is what grants it. It scales to `min_nodes` (0 unless configured) after
`idle_seconds_before_scaledown`.

Day two: the update API of an AmlCompute cluster (`ClusterUpdateParameters`) carries only its
scale settings, and the cluster name is fixed by config. Every other property Azure cannot change
in place, so a change of VM size, priority, OS or SSH access replaces the cluster, deleting the
old one first (two clusters cannot share the name); a preview shows it as a replacement. Scale
settings change in place.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass

import pulumi
from pulumi_azure_native import authorization, managedidentity
from pulumi_azure_native import machinelearningservices as ml

from infra.settings import ClusterSettings

# Built-in Azure role "AcrPull" (pull images from a container registry). Role definition ids of
# built-in roles are the same GUID in every subscription and tenant.
ACR_PULL_ROLE_ID = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
# Built-in role "Key Vault Secrets User" (read secret contents) on an RBAC-mode vault.
KEY_VAULT_SECRETS_USER_ROLE_ID = "4633458b-17de-408a-b874-0445c86b69e6"

# Every role the program grants, by its built-in name: the deploying identity must be allowed to
# assign each (README "Prerequisites" and the deploy workflow's setup notes list them; a test
# keeps those lists complete).
GRANTED_ROLES = {
    "AcrPull": ACR_PULL_ROLE_ID,
    "Key Vault Secrets User": KEY_VAULT_SECRETS_USER_ROLE_ID,
}

# AmlCompute properties Azure cannot update in place (anything outside the scale settings), as
# paths of the Compute resource's inputs: a change replaces the cluster.
REPLACED_ON_CHANGE = (
    "properties.computeType",
    "properties.properties.vmSize",
    "properties.properties.vmPriority",
    "properties.properties.osType",
    "properties.properties.remoteLoginPortPublicAccess",
)


def role_definition_id(subscription_id: str, role_id: str) -> str:
    """ARM id of a built-in role definition, as a role assignment expects it."""
    provider = "providers/Microsoft.Authorization/roleDefinitions"
    return f"/subscriptions/{subscription_id}/{provider}/{role_id}"


def assignment_name(scope: str, principal_id: str, role_id: str) -> str:
    """GUID naming a role assignment (names must be GUIDs), derived from what makes it unique:
    scope, principal id and role. A replaced identity has a new principal id, so its assignment
    gets a new name and is created beside the old one, which is deleted afterwards, instead of
    colliding with it (Azure refuses a second assignment of the same name). Re-running after
    lost state names the same assignment, which Azure accepts as the same PUT."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}|{principal_id}|{role_id}"))


def _grant(
    name: str,
    role_id: str,
    scope: pulumi.Input[str],
    identity: managedidentity.UserAssignedIdentity,
    subscription_id: str,
    description: str,
    opts: pulumi.ResourceOptions,
) -> authorization.RoleAssignment:
    """A built-in role for a cluster identity on one scope."""
    return authorization.RoleAssignment(
        name,
        # Computing a name string from outputs is pure (no resource is created in apply).
        role_assignment_name=pulumi.Output.all(scope, identity.principal_id).apply(
            lambda parts: assignment_name(parts[0], parts[1], role_id)
        ),
        principal_id=identity.principal_id,
        # Telling ARM the principal type avoids failures while the new identity replicates.
        principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
        role_definition_id=role_definition_id(subscription_id, role_id),
        scope=scope,
        description=description,
        opts=opts,
    )


@dataclass(frozen=True)
class ComputeClusterArgs:
    """A cluster's settings plus where it lives; workspace values may be outputs."""

    cluster: ClusterSettings
    location: str
    subscription_id: str
    identity_name: str
    resource_group_name: pulumi.Input[str]
    workspace_name: pulumi.Input[str]
    registry_id: pulumi.Input[str]
    key_vault_id: pulumi.Input[str]
    """The workspace's key vault (RBAC mode), where Azure ML keeps datastore credentials."""
    tags: Mapping[str, str]


class ComputeCluster(pulumi.ComponentResource):
    """AmlCompute cluster with a managed identity that has AcrPull on the registry."""

    compute_name: pulumi.Output[str]
    identity_id: pulumi.Output[str]
    identity_principal_id: pulumi.Output[str]
    identity_client_id: pulumi.Output[str]
    """Client id of the cluster identity: Azure ML environments name it to pull the image."""

    def __init__(
        self, name: str, args: ComputeClusterArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azureml-pipelines:compute:ComputeCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        cluster = args.cluster
        identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_name_=args.identity_name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            tags=dict(args.tags),
            opts=child,
        )
        acr_pull = _grant(
            f"{name}-acrpull",
            ACR_PULL_ROLE_ID,
            args.registry_id,
            identity,
            args.subscription_id,
            f"Compute cluster {cluster.name} pulls pipeline images",
            child,
        )
        secrets_user = _grant(
            f"{name}-kvsecrets",
            KEY_VAULT_SECRETS_USER_ROLE_ID,
            args.key_vault_id,
            identity,
            args.subscription_id,
            f"Compute cluster {cluster.name} reads datastore credentials",
            child,
        )
        compute = ml.Compute(
            f"{name}-compute",
            compute_name=cluster.name,
            resource_group_name=args.resource_group_name,
            workspace_name=args.workspace_name,
            location=args.location,
            identity=ml.ManagedServiceIdentityArgs(
                type=ml.ManagedServiceIdentityType.USER_ASSIGNED,
                user_assigned_identities=[identity.id],
            ),
            properties=ml.AmlComputeArgs(
                compute_type="AmlCompute",
                # Only what a replacement changes anyway: a scale change stays an in-place update.
                description=f"Pipeline cluster ({cluster.vm_size}, {cluster.priority.value})",
                properties=_aml_properties(cluster),
            ),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(
                parent=self,
                # The first job may start as soon as the cluster exists: it must already be able
                # to pull the image and read datastore credentials.
                depends_on=[acr_pull, secrets_user],
                replace_on_changes=list(REPLACED_ON_CHANGE),
                # The name is fixed by config: the old cluster must go before the new one comes.
                delete_before_replace=True,
            ),
        )
        self.compute_name = compute.name
        self.identity_id = identity.id
        self.identity_principal_id = identity.principal_id
        self.identity_client_id = identity.client_id
        self.register_outputs(
            {
                "computeName": self.compute_name,
                "identityId": self.identity_id,
                "identityPrincipalId": self.identity_principal_id,
                "identityClientId": self.identity_client_id,
            }
        )


def _aml_properties(cluster: ClusterSettings) -> ml.AmlComputePropertiesArgs:
    """VM size, priority and scaling of a cluster; no public SSH port."""
    return ml.AmlComputePropertiesArgs(
        vm_size=cluster.vm_size,
        vm_priority=cluster.priority.value,
        os_type=ml.OsType.LINUX,
        remote_login_port_public_access=ml.RemoteLoginPortPublicAccess.DISABLED,
        scale_settings=ml.ScaleSettingsArgs(
            min_node_count=cluster.min_nodes,
            max_node_count=cluster.max_nodes,
            # ISO 8601 duration, as the AmlCompute API expects it.
            node_idle_time_before_scale_down=f"PT{cluster.idle_seconds_before_scaledown}S",
        ),
    )
