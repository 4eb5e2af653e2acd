"""ComputeCluster component: an AmlCompute cluster that pulls from the registry by identity.

The cluster runs as a user-assigned managed identity holding AcrPull on the container registry
(scoped to the registry only), so it pulls the training image without any password. It scales to
`min_nodes` (0 unless configured) after `idle_seconds_before_scaledown`.
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


def role_definition_id(subscription_id: str, role_id: str) -> str:
    """ARM id of a built-in role definition, as a role assignment expects it."""
    provider = "providers/Microsoft.Authorization/roleDefinitions"
    return f"/subscriptions/{subscription_id}/{provider}/{role_id}"


def assignment_name(scope: str, principal: str, role_id: str) -> str:
    """Stable GUID naming a role assignment (role assignment names must be GUIDs)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope}|{principal}|{role_id}"))


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
        acr_pull = authorization.RoleAssignment(
            f"{name}-acrpull",
            # A name derived from scope, identity and role (not a random one): re-running after
            # lost state targets the same assignment instead of failing with RoleAssignmentExists.
            role_assignment_name=pulumi.Output.from_input(args.registry_id).apply(
                lambda scope: assignment_name(scope, args.identity_name, ACR_PULL_ROLE_ID)
            ),
            principal_id=identity.principal_id,
            # Telling ARM the principal type avoids failures while the new identity replicates.
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(args.subscription_id, ACR_PULL_ROLE_ID),
            scope=args.registry_id,
            description=f"Compute cluster {cluster.name} pulls pipeline images",
            opts=child,
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
                description=f"Pipeline cluster ({cluster.priority.value}, max {cluster.max_nodes})",
                properties=_aml_properties(cluster),
            ),
            tags=dict(args.tags),
            # The first job may start as soon as the cluster exists: it must already be able to
            # pull the image.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[acr_pull]),
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
