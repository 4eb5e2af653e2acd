"""Pulumi program of azureml-pipelines: composition root only (run by the project's `__main__.py`).

Deploys, per stack (settings from Pulumi.yaml defaults + Pulumi.<stack>.yaml):

- Workspace: resource group (or an existing one), storage account, key vault, Log Analytics +
  Application Insights, container registry (admin user off) and the Azure ML workspace;
- one ComputeCluster per configured cluster: AmlCompute scaling to zero, run by a managed
  identity with AcrPull on the registry;
- one TrainingImage per configured image: the Docker context built and pushed to the registry,
  tagged by the content hash of the context;
- Pipelines: every definition in `pipeline_defs/` published behind a versioned PipelineEndpoint
  (dynamic provider), with its schedules (paused where `schedulesEnabled` is false);
- DataFactory, where the stack turns it on (`dataFactory`): an ADF pipeline per definition that
  runs its endpoint, with optional schedule triggers.

Stack outputs: workspace name/id, resource group, subscription id, studio URL, registry login
server, image references (with digest) by image key, cluster names, the REST URL of every
pipeline endpoint and the experiment to submit its runs under; with a factory, its name and the
ADF pipeline name of each definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pulumi
from pulumi_azure_native import authorization

from infra.components import (
    ComputeCluster,
    ComputeClusterArgs,
    TrainingImage,
    TrainingImageArgs,
    Workspace,
    WorkspaceArgs,
)
from infra.components.image import ImageContextError
from infra.components.pipelines import Pipelines, PipelinesArgs, load_pipeline_definitions
from infra.definitions.errors import SpecErrors
from infra.naming import resource_names
from infra.paths import ProjectRootError, project_path, project_root
from infra.preflight import PreflightErrors, preflight
from infra.program_runtime import composing, track_outputs
from infra.provider.port import RegistryIdentity
from infra.settings import Api, SettingsError, factory_pipelines, read_settings

if TYPE_CHECKING:
    from infra.components.pipelines_v2 import PipelinesV2

# The v2 and Data Factory components are imported where a stack uses them: a v1 stack without a
# factory does not pay their import (about 0.1 s of every preview, measured with -X importtime).

# What a user can get wrong before any resource exists: config, definitions, a build context, the
# project's location. Each message already names the key or the file and line; Pulumi shows a
# RunError as that message alone, where any other exception comes with a Python traceback.
USER_ERRORS = (SettingsError, SpecErrors, PreflightErrors, ImageContextError, ProjectRootError)


def main() -> None:
    """Run the program: user errors end it with their located message, no traceback."""
    # The runtime's per-output and per-object costs, kept linear (see infra.program_runtime).
    track_outputs()
    try:
        with composing():
            compose()
    except USER_ERRORS as exc:
        raise pulumi.RunError(str(exc)) from None


def compose() -> None:
    """Read the stack settings once, compose the components and export the stack outputs."""
    settings = read_settings()
    # Definitions first: a broken one, or one naming a cluster or image this stack lacks, stops the
    # program (every problem with file, line and key) before any resource is registered.
    definitions = load_pipeline_definitions(
        project_path(settings.pipeline_defs),
        project_root(),
        settings.cluster_names,
        list(settings.images),
    )
    # What the stack cannot deploy with these definitions (an image context that is missing, Data
    # Factory pipelines it lists, what v2 cannot express), before any resource: the checks
    # `amlpipe validate --stack` runs too.
    preflight(settings, definitions, project_root()).raise_all()
    factory_settings = settings.data_factory
    factory_definitions = factory_pipelines(factory_settings, definitions)
    client = authorization.get_client_config()
    names = resource_names(
        settings.name_prefix,
        settings.project,
        settings.stack,
        client.subscription_id,
        settings.name_generation,
    )
    tags = settings.resource_tags()

    workspace = Workspace(
        "aml",
        WorkspaceArgs(
            location=settings.location,
            names=names,
            tenant_id=client.tenant_id,
            subscription_id=client.subscription_id,
            tags=tags,
            protect_data=settings.protect_data,
            registry_sku=settings.registry_sku,
            key_vault_purge_protection=settings.key_vault_purge_protection,
            public_network_access=settings.public_network_access,
            existing_resource_group=settings.existing_group,
        ),
    )

    clusters = [
        ComputeCluster(
            cluster.name,
            ComputeClusterArgs(
                cluster=cluster,
                location=settings.location,
                subscription_id=client.subscription_id,
                identity_name=names.identity(cluster.name),
                resource_group_name=workspace.resource_group_name,
                workspace_name=workspace.workspace_name,
                registry_id=workspace.registry_id,
                key_vault_id=workspace.key_vault_id,
                tags=tags,
            ),
        )
        for cluster in settings.clusters
    ]

    images = {
        key: TrainingImage(
            f"image-{key}",
            TrainingImageArgs(
                key=key,
                image=image,
                repo_root=project_root(),
                registry_login_server=workspace.registry_login_server,
            ),
        )
        for key, image in settings.images.items()
    }
    # Image key -> pushed reference with digest: what the pipeline resources run their steps in.
    image_refs = {key: image.ref for key, image in images.items()}

    def publish_v1(schedules_run: bool, after: Mapping[str, pulumi.Resource]) -> Pipelines:
        return Pipelines(
            "pipelines",
            PipelinesArgs(
                definitions=definitions,
                project_root=project_root(),
                subscription_id=client.subscription_id,
                resource_group=workspace.resource_group_name,
                workspace_name=workspace.workspace_name,
                image_refs=image_refs,
                cluster_names=frozenset(settings.cluster_names),
                schedules_enabled=settings.schedules_enabled and schedules_run,
                version_retention=settings.version_retention,
                cluster_identities={
                    spec.name: pulumi.Output.all(
                        cluster.identity_id, cluster.identity_client_id
                    ).apply(lambda ids: RegistryIdentity(*ids))
                    for spec, cluster in zip(settings.clusters, clusters, strict=True)
                },
                # Jobs start on the clusters as soon as a schedule fires: they must exist first.
                depends_on=tuple(clusters),
                schedules_after=after,
            ),
        )

    def publish_v2(schedules_run: bool, after: Mapping[str, pulumi.Resource]) -> PipelinesV2:
        from infra.components.pipelines_v2 import PipelinesV2, PipelinesV2Args

        return PipelinesV2(
            "pipelines-v2",
            PipelinesV2Args(
                definitions=definitions,
                project_root=project_root(),
                location=settings.location,
                subscription_id=client.subscription_id,
                resource_group=workspace.resource_group_name,
                workspace_name=workspace.workspace_name,
                image_refs=image_refs,
                image_tags={key: image.tag for key, image in images.items()},
                name_salt=f"{settings.project}/{settings.name_prefix}/{settings.stack}/"
                f"{client.subscription_id}",
                owner=f"{settings.project}/{settings.stack}",
                schedules_enabled=settings.schedules_enabled and schedules_run,
                version_retention=settings.version_retention,
                tags=tags,
                depends_on=tuple(clusters),
                schedules_after=after,
            ),
        )

    # The active API first. During a cut-over (apiPrevious set) the retiring API keeps its
    # endpoints, and each of its schedules is paused only after (depends_on) the active API's
    # schedule of the same name exists: at no point does neither run, and the moment both do is
    # that pair's own writes. See the README, "Azure ML v1 or v2".
    v1: Pipelines | None = None
    v2: PipelinesV2 | None = None
    if settings.api is Api.V1:
        v1 = publish_v1(True, {})
        if Api.V2 in settings.apis:
            v2 = publish_v2(False, v1.schedules)
    else:
        v2 = publish_v2(True, {})
        if Api.V1 in settings.apis:
            v1 = publish_v1(False, v2.schedules)
    urls = {Api.V1: v1.rest_urls if v1 else None, Api.V2: v2.rest_urls if v2 else None}

    pulumi.export("resourceGroupName", workspace.resource_group_name)
    pulumi.export("subscriptionId", client.subscription_id)
    pulumi.export("workspaceName", workspace.workspace_name)
    pulumi.export("workspaceId", workspace.workspace_id)
    pulumi.export("studioUrl", workspace.studio_url)
    pulumi.export("registryName", workspace.registry_name)
    pulumi.export("registryLoginServer", workspace.registry_login_server)
    pulumi.export("imageRefs", image_refs)
    pulumi.export("clusterNames", [c.compute_name for c in clusters])
    pulumi.export("api", settings.api.value)
    pulumi.export("pipelineEndpoints", urls[settings.api])
    if len(settings.apis) > 1:
        # During a cut-over both are reachable; callers move to pipelineEndpoints.
        pulumi.export("pipelineEndpointsPrevious", urls[settings.apis[1]])
    # The experiment each pipeline's runs are filed under: callers of the REST URLs name it.
    pulumi.export(
        "pipelineExperiments",
        v1.experiments if v1 else {d.spec.name: d.spec.experiment for d in definitions},
    )

    if factory_settings.enabled:
        # ADF runs what the stack's active API publishes: a cut-over switches what its pipelines
        # call in the same `pulumi up`, and ADF triggers never start both.
        from infra.components.data_factory import (
            BatchEndpointTarget,
            DataFactory,
            DataFactoryArgs,
            FactoryTarget,
            PipelineEndpointTarget,
        )

        targets: dict[str, FactoryTarget]
        if settings.api is Api.V1:
            assert v1 is not None
            targets = {
                key: PipelineEndpointTarget(e.endpoint_id) for key, e in v1.endpoints.items()
            }
        else:
            assert v2 is not None
            targets = {
                key: BatchEndpointTarget(e.properties.scoring_uri, v2.defaults[key])
                for key, e in v2.endpoints.items()
            }
        factory = DataFactory(
            "adf",
            DataFactoryArgs(
                settings=factory_settings,
                definitions=factory_definitions,
                targets=targets,
                object_prefix=f"{settings.name_prefix}-{settings.stack}",
                location=settings.location,
                subscription_id=client.subscription_id,
                resource_group_name=workspace.resource_group_name,
                workspace_name=workspace.workspace_name,
                workspace_id=workspace.workspace_id,
                tags=tags,
                schedules_enabled=settings.schedules_enabled,
            ),
        )
        pulumi.export("dataFactoryName", factory.factory_name)
        pulumi.export("dataFactoryPipelines", factory.pipeline_names)
