"""Workspace component: an Azure ML workspace and everything it links to.

Resource group (new, or an existing one named in config), storage account, key vault, Log Analytics
workspace with workspace-based Application Insights, container registry (admin user off: every
consumer authenticates with an Azure AD identity), and the ML workspace linked to all of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

import pulumi
from pulumi_azure_native import applicationinsights, containerregistry, keyvault, resources, storage
from pulumi_azure_native import machinelearningservices as ml
from pulumi_azure_native import operationalinsights as insights

from infra.naming import ResourceNames
from infra.settings import NetworkAccess, RegistrySku

# Log retention of the Log Analytics workspace: 30 days is the free retention of PerGB2018.
LOG_RETENTION_DAYS = 30
# Soft-deleted key vaults are recoverable for this long (90 is Azure's maximum and default).
SOFT_DELETE_RETENTION_DAYS = 90


class _Placement(TypedDict):
    """Arguments every child resource shares."""

    resource_group_name: pulumi.Output[str]
    location: str
    tags: dict[str, str]


@dataclass(frozen=True)
class WorkspaceArgs:
    """What the Workspace component needs; plain values, all known before deployment."""

    location: str
    names: ResourceNames
    tenant_id: str
    subscription_id: str
    tags: Mapping[str, str]
    protect_data: bool
    """Pulumi `protect` on what holds data: storage, key vault, registry, logs, ML workspace
    (config `protectData`); destroy and replacements then stop instead of deleting them."""
    # No defaults: each setting's one default is in Pulumi.yaml; the program passes the stack's.
    registry_sku: RegistrySku
    key_vault_purge_protection: bool
    public_network_access: NetworkAccess
    existing_resource_group: str | None


class Workspace(pulumi.ComponentResource):
    """Azure ML workspace with storage, key vault, insights and container registry."""

    resource_group_name: pulumi.Output[str]
    workspace_name: pulumi.Output[str]
    workspace_id: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    key_vault_id: pulumi.Output[str]
    registry_name: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    studio_url: pulumi.Output[str]

    def __init__(
        self, name: str, args: WorkspaceArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azureml-pipelines:workspace:Workspace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # What holds data (secrets, datastores, images, logs, run history): protected on stacks
        # that keep data, so no destroy and no replacement deletes it.
        keep = pulumi.ResourceOptions(parent=self, protect=args.protect_data)
        tags = dict(args.tags)
        self.resource_group_name = self._resource_group(name, args, child)
        common = _Placement(
            resource_group_name=self.resource_group_name, location=args.location, tags=tags
        )
        account = self._storage(name, args, common, keep)
        vault = self._key_vault(name, args, common, keep)
        app_insights = self._insights(name, args, common, child, keep)
        registry = containerregistry.Registry(
            f"{name}-registry",
            registry_name=args.names.container_registry,
            sku=containerregistry.SkuArgs(name=args.registry_sku.value),
            # No shared admin password: clusters pull with their identity (AcrPull), CI pushes
            # after `az acr login` with its OIDC identity (AcrPush).
            admin_user_enabled=False,
            **common,
            opts=keep,
        )
        workspace = ml.Workspace(
            f"{name}-workspace",
            workspace_name=args.names.ml_workspace,
            friendly_name=args.names.ml_workspace,
            identity=ml.ManagedServiceIdentityArgs(
                type=ml.ManagedServiceIdentityType.SYSTEM_ASSIGNED
            ),
            sku=ml.SkuArgs(name="Basic", tier=ml.SkuTier.BASIC),
            storage_account=account.id,
            key_vault=vault.id,
            application_insights=app_insights.id,
            container_registry=registry.id,
            public_network_access=args.public_network_access.value,
            **common,
            opts=keep,
        )
        self.workspace_name = workspace.name
        self.workspace_id = workspace.id
        self.registry_id = registry.id
        self.key_vault_id = vault.id
        self.registry_name = registry.name
        self.registry_login_server = registry.login_server
        self.studio_url = pulumi.Output.all(self.resource_group_name, workspace.name).apply(
            lambda parts: _studio_url(args.subscription_id, parts[0], parts[1], args.tenant_id)
        )
        self.register_outputs(
            {
                "resourceGroupName": self.resource_group_name,
                "workspaceName": self.workspace_name,
                "workspaceId": self.workspace_id,
                "registryId": self.registry_id,
                "keyVaultId": self.key_vault_id,
                "registryName": self.registry_name,
                "registryLoginServer": self.registry_login_server,
                "studioUrl": self.studio_url,
            }
        )

    @staticmethod
    def _resource_group(
        name: str, args: WorkspaceArgs, child: pulumi.ResourceOptions
    ) -> pulumi.Output[str]:
        """Name of the resource group: the configured existing one, or a new one."""
        if args.existing_resource_group:
            return pulumi.Output.from_input(args.existing_resource_group)
        group = resources.ResourceGroup(
            f"{name}-rg",
            resource_group_name=args.names.resource_group,
            location=args.location,
            tags=dict(args.tags),
            opts=child,
        )
        return group.name

    @staticmethod
    def _storage(
        name: str, args: WorkspaceArgs, common: _Placement, child: pulumi.ResourceOptions
    ) -> storage.StorageAccount:
        """General-purpose v2 account for the workspace's datastores: HTTPS, TLS 1.2, private."""
        return storage.StorageAccount(
            f"{name}-storage",
            account_name=args.names.storage_account,
            kind=storage.Kind.STORAGE_V2,
            sku=storage.SkuArgs(name=storage.SkuName.STANDARD_LRS),
            enable_https_traffic_only=True,
            minimum_tls_version=storage.MinimumTlsVersion.TLS1_2,
            allow_blob_public_access=False,
            **common,
            opts=child,
        )

    @staticmethod
    def _key_vault(
        name: str, args: WorkspaceArgs, common: _Placement, child: pulumi.ResourceOptions
    ) -> keyvault.Vault:
        """Key vault with Azure RBAC (no access policies to drift) and soft delete."""
        return keyvault.Vault(
            f"{name}-kv",
            vault_name=args.names.key_vault,
            properties=keyvault.VaultPropertiesArgs(
                tenant_id=args.tenant_id,
                sku=keyvault.SkuArgs(family=keyvault.SkuFamily.A, name=keyvault.SkuName.STANDARD),
                enable_rbac_authorization=True,
                enable_soft_delete=True,
                soft_delete_retention_in_days=SOFT_DELETE_RETENTION_DAYS,
                # Azure rejects an explicit `false` and purge protection cannot be turned off once
                # on, so the property is only sent when it is wanted.
                enable_purge_protection=True if args.key_vault_purge_protection else None,
            ),
            **common,
            opts=child,
        )

    @staticmethod
    def _insights(
        name: str,
        args: WorkspaceArgs,
        common: _Placement,
        child: pulumi.ResourceOptions,
        keep: pulumi.ResourceOptions,
    ) -> applicationinsights.Component:
        """Log Analytics workspace and the workspace-based Application Insights on top of it."""
        logs = insights.Workspace(
            f"{name}-logs",
            workspace_name=args.names.log_analytics,
            sku=insights.WorkspaceSkuArgs(name=insights.WorkspaceSkuNameEnum.PER_GB2018),
            retention_in_days=LOG_RETENTION_DAYS,
            **common,
            opts=keep,
        )
        return applicationinsights.Component(
            f"{name}-insights",
            resource_name_=args.names.app_insights,
            kind="web",
            application_type=applicationinsights.ApplicationType.WEB,
            ingestion_mode=applicationinsights.IngestionMode.LOG_ANALYTICS,
            workspace_resource_id=logs.id,
            **common,
            opts=child,
        )


def _studio_url(subscription_id: str, resource_group: str, workspace: str, tenant_id: str) -> str:
    """Azure ML studio link that opens this workspace directly."""
    wsid = (
        f"/subscriptions/{subscription_id}/resourcegroups/{resource_group}/workspaces/{workspace}"
    )
    return f"https://ml.azure.com/?wsid={wsid}&tid={tenant_id}"
