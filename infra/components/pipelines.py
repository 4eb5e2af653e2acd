"""Pipelines component: one PipelineEndpoint per pipeline definition, one PipelineSchedule per
schedule, on the stack's workspace, clusters and images.

Definitions are checked against the stack's cluster names and image keys before anything is
registered, so a typo in `compute:` or `image:` fails the program (with file, line and key path)
without a single resource in the plan. The builders here (:func:`endpoint_args`,
:func:`schedule_args`) turn a loaded definition into the typed Args of
:mod:`infra.provider.resources`: the readable summary `pulumi preview --diff` shows. Only the
content hash and image references wait for the images.

Outputs (attributes, and registered as outputs of the component):

- ``rest_urls`` (``restUrls``): pipeline name -> REST URL of its endpoint (stable across
  versions: what Data Factory or any client calls);
- ``experiments`` (``experiments``): pipeline name -> the experiment name REST and Data Factory
  callers should submit runs under (``ExperimentName`` in the submit body). A published pipeline
  has no experiment of its own, so changing it publishes nothing;
- ``endpoint_ids`` (``endpointIds``): pipeline name -> endpoint id;
- ``endpoints`` / ``schedules``: the resources, by pipeline name and by schedule name.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pulumi

from infra.definitions.command import step_command
from infra.definitions.errors import SpecError, SpecErrors
from infra.definitions.hashing import StepDigest, TreeDigest, pipeline_digest, step_digests
from infra.definitions.loader import LoadedPipeline, display_path, load_definitions
from infra.definitions.model import PipelineSpec, Schedule
from infra.definitions.recurrence import effective_recurrence
from infra.definitions.refs import Argument, Literal
from infra.definitions.validate import KnownNames, target_problems
from infra.provider.port import Owner
from infra.provider.props import ParameterSummary, StepSummary
from infra.provider.resources import (
    IdentityInput,
    PipelineEndpoint,
    PipelineEndpointArgs,
    PipelineSchedule,
    PipelineScheduleArgs,
    WorkspaceArgs,
)

SHORT_HASH = 16
"""Characters of a step's code digest shown in the diff (the content hash covers all of it)."""


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


# -- builders: a loaded definition -> typed resource Args --------------------------------------


def _arg_text(raw: str | int | float | bool, token: Argument) -> str:
    return token.value if isinstance(token, Literal) else str(raw)


def step_summaries(spec: PipelineSpec, code_hashes: Mapping[str, str]) -> dict[str, StepSummary]:
    """Readable summary of each step; `code_hashes` maps step name -> code digest."""
    return {
        step.name: StepSummary(
            kind=step.kind,
            run=step_command(step).text(),
            code=step.code,
            code_hash=code_hashes[step.name][:SHORT_HASH],
            args=[_arg_text(a, t) for a, t in zip(step.args, step.arguments, strict=True)],
            compute=spec.step_compute(step),
            image=spec.step_image(step),
            outputs=list(step.outputs),
            after=list(step.after),
            allow_reuse=step.allow_reuse,
            environment=dict(step.environment),
        )
        for step in spec.steps
    }


def parameter_summaries(spec: PipelineSpec) -> dict[str, ParameterSummary]:
    """Each parameter's type and default (as JSON text, exact through the engine)."""
    return {
        name: ParameterSummary(type=p.type.value, default=json.dumps(p.default))
        for name, p in spec.parameters.items()
    }


def code_root_of(loaded: LoadedPipeline, project_root: Path) -> str:
    """The pipeline folder relative to the project root, POSIX form."""
    return loaded.folder.resolve().relative_to(project_root.resolve()).as_posix()


def schedule_name(spec: PipelineSpec, schedule: Schedule) -> str:
    """Azure name of a schedule: `<pipeline>-<schedule>` (unique in the workspace)."""
    return f"{spec.name}-{schedule.name}"


@dataclass(frozen=True)
class EndpointPlacement:
    """Where and by whom a pipeline is published: the same for every pipeline of a stack."""

    workspace: WorkspaceArgs
    owner: Owner
    project_root: Path
    version_retention: int
    adopt_existing: frozenset[str] = frozenset()
    """Pipeline names whose existing endpoint (made by another stack, or by hand) is taken over."""


def endpoint_args(
    loaded: LoadedPipeline,
    placement: EndpointPlacement,
    images: pulumi.Input[Mapping[str, pulumi.Input[str]]],
    content_hash: pulumi.Input[str],
    registry_identities: Mapping[str, IdentityInput],
    steps: Mapping[str, StepDigest] | None = None,
) -> PipelineEndpointArgs:
    """The endpoint of one definition; `images` and `content_hash` may wait for the images;
    `steps` are the step digests when the caller already has them (code is read once)."""
    spec = loaded.spec
    digests = steps if steps is not None else step_digests(loaded)
    code = {name: d.code.digest for name, d in digests.items()}
    clusters = {spec.step_compute(s) for s in spec.steps}
    return PipelineEndpointArgs(
        workspace=placement.workspace,
        owner=placement.owner,
        name=spec.name,
        description=spec.description,
        content_hash=content_hash,
        code_root=code_root_of(loaded, placement.project_root),
        steps=step_summaries(spec, code),
        parameters=parameter_summaries(spec),
        images=images,
        registry_identities={
            cluster: identity
            for cluster, identity in sorted(registry_identities.items())
            if cluster in clusters
        },
        version_retention=placement.version_retention,
        adopt_existing=spec.name in placement.adopt_existing,
    )


def schedule_args(
    spec: PipelineSpec,
    schedule: Schedule,
    placement: EndpointPlacement,
    endpoint_id: pulumi.Input[str],
    schedules_enabled: bool,
) -> PipelineScheduleArgs:
    """One schedule of a definition, on its endpoint; paused unless both the definition and the
    stack (`schedulesEnabled`) let it run."""
    return PipelineScheduleArgs(
        workspace=placement.workspace,
        owner=placement.owner,
        name=schedule_name(spec, schedule),
        endpoint_id=endpoint_id,
        experiment=spec.experiment,
        recurrence=effective_recurrence(schedule),
        description=schedule.description,
        parameters=dict(schedule.parameters),
        enabled=schedule.enabled and schedules_enabled,
    )


# -- the component ---------------------------------------------------------------------------


def _content_hash(
    loaded: LoadedPipeline, refs: pulumi.Output[dict[str, str]], steps: Mapping[str, StepDigest]
) -> pulumi.Output[str]:
    # Pure computation on the image references (no resource is created in apply).
    return refs.apply(lambda r: pipeline_digest(loaded, r, steps).digest)


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
    schedules_enabled: bool
    """False on dev stacks: schedules are created paused."""
    version_retention: int
    """Enabled versions kept per endpoint (`versionRetention`; its default is in Pulumi.yaml)."""
    cluster_identities: Mapping[str, IdentityInput] = field(default_factory=dict)
    """Cluster name -> its user-assigned identity with AcrPull: the published environments pull
    the image with it (no registry password anywhere)."""
    depends_on: tuple[pulumi.Resource, ...] = field(default_factory=tuple)
    """Resources the pipelines need beyond their inputs (the compute clusters)."""
    owner: Owner | None = None
    """The owning stack recorded on everything published; None: this Pulumi project and stack."""
    adopt_existing: frozenset[str] = frozenset()
    """Pipeline names whose existing endpoint of the same name is taken over."""
    schedules_after: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """Schedule name -> the resource that schedule is created or changed after: during a
    cut-over, the other API's schedule of the same name, so each pause follows the creation of
    what replaces it (and waits for nothing else: the overlap stays that pair's own writes)."""


class Pipelines(pulumi.ComponentResource):
    """Every pipeline definition published behind its endpoint, with its schedules."""

    endpoints: dict[str, PipelineEndpoint]
    """Pipeline name -> endpoint resource."""
    schedules: dict[str, PipelineSchedule]
    """Schedule name (`<pipeline>-<schedule>`) -> schedule resource."""
    rest_urls: pulumi.Output[dict[str, str]]
    """Pipeline name -> REST URL of its endpoint."""
    endpoint_ids: pulumi.Output[dict[str, str]]
    """Pipeline name -> endpoint id."""
    experiments: dict[str, str]
    """Pipeline name -> experiment name that callers submit runs under."""

    def __init__(
        self, name: str, args: PipelinesArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        errors = unknown_targets(args.definitions, args.cluster_names, frozenset(args.image_refs))
        if errors:
            raise SpecErrors(errors)  # before any resource is registered
        super().__init__("azureml-pipelines:pipelines:Pipelines", name, None, opts)
        placement = EndpointPlacement(
            workspace=WorkspaceArgs(args.subscription_id, args.resource_group, args.workspace_name),
            owner=args.owner or Owner(pulumi.get_project(), pulumi.get_stack()),
            project_root=args.project_root,
            version_retention=args.version_retention,
            adopt_existing=args.adopt_existing,
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        self.endpoints = {}
        self.schedules = {}
        # Code-tree digests by folder, shared by every pipeline: each tree is read once.
        trees: dict[Path, TreeDigest] = {}
        # The references of a set of images, and their `images` input, shared by the pipelines
        # that run in that set: every Output costs the runtime several tasks until the end.
        image_sets: dict[tuple[str, ...], tuple[pulumi.Output[dict[str, str]], ...]] = {}
        for loaded in args.definitions:
            steps = step_digests(loaded, trees)
            spec = loaded.spec
            used = tuple(sorted({spec.step_image(s) for s in spec.steps}))
            if used not in image_sets:
                refs = pulumi.Output.all(**{key: args.image_refs[key] for key in used})
                image_sets[used] = (refs, refs.apply(dict))
            refs, images = image_sets[used]
            endpoint = PipelineEndpoint(
                f"{name}-{spec.name}",
                endpoint_args(
                    loaded,
                    placement,
                    images=images,
                    content_hash=_content_hash(loaded, refs, steps),
                    registry_identities=args.cluster_identities,
                    steps=steps,
                ),
                child,
            )
            self.endpoints[spec.name] = endpoint
            for schedule in spec.schedules:
                key = schedule_name(spec, schedule)
                replaced = args.schedules_after.get(key)
                # A schedule waits for its endpoint (its `endpoint_id` input), which waits for
                # `depends_on`: naming those again would only make every schedule expand them.
                schedule_opts = pulumi.ResourceOptions(
                    parent=self, depends_on=[replaced] if replaced else None
                )
                self.schedules[key] = PipelineSchedule(
                    f"{name}-{key}",
                    schedule_args(spec, schedule, placement, endpoint.id, args.schedules_enabled),
                    schedule_opts,
                )
        self.rest_urls = pulumi.Output.all(
            **{key: e.rest_url for key, e in self.endpoints.items()}
        ).apply(dict)
        self.endpoint_ids = pulumi.Output.all(
            **{key: e.id for key, e in self.endpoints.items()}
        ).apply(dict)
        self.experiments = {loaded.spec.name: loaded.spec.experiment for loaded in args.definitions}
        self.register_outputs(
            {
                "restUrls": self.rest_urls,
                "endpointIds": self.endpoint_ids,
                "experiments": self.experiments,
            }
        )
