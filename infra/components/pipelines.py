"""Pipelines component: one PipelineEndpoint per pipeline definition, one PipelineSchedule per
schedule, on the stack's workspace, clusters and images.

Definitions are checked against the stack's cluster names and image keys before anything is
registered, so a typo in `compute:` or `image:` fails the program (with file, line and key path)
without a single resource in the plan. Endpoint inputs are the readable summary of
:mod:`infra.provider.props`; only the content hash and image references wait for the images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from infra.definitions.errors import SpecError, SpecErrors
from infra.definitions.hashing import StepDigest, TreeDigest, pipeline_digest, step_digests
from infra.definitions.loader import LoadedPipeline, display_path, load_definitions
from infra.definitions.validate import KnownNames, target_problems
from infra.provider.props import (
    endpoint_static_props,
    schedule_name,
    schedule_settings_inputs,
)
from infra.provider.resources import (
    PipelineEndpoint,
    PipelineEndpointArgs,
    PipelineSchedule,
    PipelineScheduleArgs,
    WorkspaceArgs,
)


def load_pipeline_definitions(
    folder: Path, project_root: Path, cluster_names: Sequence[str], image_keys: Sequence[str]
) -> tuple[LoadedPipeline, ...]:
    """Load `pipeline_defs/`, checking compute and image names against the stack; raise
    :class:`SpecErrors` listing every problem. Call it before registering any resource."""
    known = KnownNames(computes=frozenset(cluster_names), images=frozenset(image_keys))
    return load_definitions([folder], project_root, known).raise_if_invalid()


def unknown_targets(
    definitions: Sequence[LoadedPipeline], cluster_names: frozenset[str], image_keys: frozenset[str]
) -> list[SpecError]:
    """Steps whose cluster or image the stack does not have (a second guard, for definitions
    loaded without :class:`KnownNames`), by the spec core's own rule."""
    known = KnownNames(computes=cluster_names, images=image_keys)
    return [
        SpecError(display_path(loaded.file), None, problem.path, problem.message)
        for loaded in definitions
        for problem in target_problems(
            loaded.spec.compute, loaded.spec.image, loaded.spec.steps, known
        )
    ]


@dataclass(frozen=True)
class PipelinesArgs:
    """Definitions plus where and with what they run."""

    definitions: tuple[LoadedPipeline, ...]
    project_root: Path
    """Folder of Pulumi.yaml: the provider host runs there and finds the pipeline folders."""
    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace_name: pulumi.Input[str]
    image_refs: Mapping[str, pulumi.Input[str]]
    """Image key -> pushed reference (with digest)."""
    cluster_names: frozenset[str]
    schedules_enabled: bool = True
    """False on dev stacks: schedules are created paused."""
    version_retention: int = 2
    cluster_identities: Mapping[str, tuple[pulumi.Input[str], pulumi.Input[str]]] = field(
        default_factory=dict
    )
    """Cluster name -> (resource id, client id) of its user-assigned identity with AcrPull: the
    published environments pull the image with it (no registry password anywhere)."""
    depends_on: tuple[pulumi.Resource, ...] = field(default_factory=tuple)
    """Resources the pipelines need beyond their inputs (the compute clusters)."""


class Pipelines(pulumi.ComponentResource):
    """Every pipeline definition published behind its endpoint, with its schedules."""

    endpoints: dict[str, PipelineEndpoint]
    schedules: dict[str, PipelineSchedule]
    rest_urls: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: PipelinesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        errors = unknown_targets(args.definitions, args.cluster_names, frozenset(args.image_refs))
        if errors:
            raise SpecErrors(errors)  # before any resource is registered
        super().__init__("azureml-pipelines:pipelines:Pipelines", name, None, opts)
        workspace = WorkspaceArgs(args.subscription_id, args.resource_group, args.workspace_name)
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.endpoints = {}
        self.schedules = {}
        # Code-tree digests by folder, shared by every pipeline: each tree is read once.
        trees: dict[Path, TreeDigest] = {}
        for loaded in args.definitions:
            steps = step_digests(loaded, trees)
            endpoint = self._endpoint(name, loaded, steps, args, workspace, child)
            self.endpoints[loaded.spec.name] = endpoint
            for schedule in loaded.spec.schedules:
                key = schedule_name(loaded.spec, schedule)
                self.schedules[key] = PipelineSchedule(
                    f"{name}-{key}",
                    PipelineScheduleArgs(
                        workspace=workspace,
                        name=key,
                        endpoint_id=endpoint.id,
                        experiment=loaded.spec.experiment,
                        **schedule_settings_inputs(schedule, args.schedules_enabled),
                    ),
                    child,
                )
        self.rest_urls = pulumi.Output.all(
            **{key: e.rest_url for key, e in self.endpoints.items()}
        ).apply(dict)
        self.register_outputs({"restUrls": self.rest_urls})

    @staticmethod
    def _endpoint(
        name: str,
        loaded: LoadedPipeline,
        steps: dict[str, StepDigest],
        args: PipelinesArgs,
        workspace: WorkspaceArgs,
        opts: pulumi.ResourceOptions,
    ) -> PipelineEndpoint:
        spec = loaded.spec
        used = sorted({spec.step_image(s) for s in spec.steps})
        refs = pulumi.Output.all(**{key: args.image_refs[key] for key in used})
        static = endpoint_static_props(loaded, args.project_root, steps)
        clusters = sorted({spec.step_compute(s) for s in spec.steps})
        identities = {
            cluster: {"resource_id": ids[0], "client_id": ids[1]}
            for cluster, ids in args.cluster_identities.items()
            if cluster in clusters
        }
        return PipelineEndpoint(
            f"{name}-{spec.name}",
            PipelineEndpointArgs(
                workspace=workspace,
                name=static["name"],
                description=static["description"],
                experiment=static["experiment"],
                code_root=static["code_root"],
                steps=static["steps"],
                parameters=static["parameters"],
                # Pure computation on the image references (no resource is created in apply).
                content_hash=refs.apply(lambda r: pipeline_digest(loaded, r, steps).digest),
                images=refs.apply(dict),
                registry_identities=identities,
                version_retention=args.version_retention,
            ),
            opts,
        )
