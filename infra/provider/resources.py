"""Thin Pulumi resources over the dynamic providers (type tokens `dynamic/azureml:...`).

Args are typed records (built by :mod:`infra.components.pipelines`); each may hold
`pulumi.Input`s where a value waits for another resource. :func:`endpoint_props` and
:func:`schedule_props` are the one place they become the wire dict the engine sends to the
provider (the readable props of :mod:`infra.provider.props`); the program reads outputs as
attributes (`endpoint.rest_url` and friends).

Output attributes are declared for type checkers only (under `TYPE_CHECKING`), here and in the
other dynamic resources: the SDK sets an attribute for every property of a resource whatever its
class declares, but it reads a class's runtime annotations at every registration (it builds a
class from them and evaluates their type hints), which for plain strings, lists and booleans
converts nothing. Measured with bench/program_eval.py's clones under valgrind: 1.2 M
instructions per pipeline, 1.5 % of what each adds.
"""

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import Resource

from infra.definitions.model import Recurrence
from infra.definitions.recurrence import describe
from infra.provider.pickling import reset_pickler
from infra.provider.port import Owner, RegistryIdentity
from infra.provider.props import ParameterSummary, StepSummary, dump
from infra.provider.provider import PipelineEndpointProvider, PipelineScheduleProvider

# Output properties are computed by the provider; declaring them as None tells the engine to
# expect them (and makes them readable as attributes).
_ENDPOINT_OUTPUTS = (
    "endpoint_id",
    "rest_url",
    "status",
    "default_version",
    "published_pipeline_id",
    "default_content_hash",
    "enabled_versions",
)
_SCHEDULE_OUTPUTS = ("schedule_id",)

ParameterValue = str | int | float | bool
IdentityInput = RegistryIdentity | pulumi.Output[RegistryIdentity]
"""A registry identity, known now or once the cluster's identity exists."""


@dataclass(frozen=True)
class WorkspaceArgs:
    """Workspace coordinates (outputs of the workspace component)."""

    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace_name: pulumi.Input[str]


@dataclass(frozen=True)
class PipelineEndpointArgs:
    """Inputs of :class:`PipelineEndpoint` (see :class:`infra.provider.props.EndpointInputs`)."""

    workspace: WorkspaceArgs
    owner: Owner
    """The stack that owns what this endpoint publishes (recorded on every object)."""
    name: str
    content_hash: pulumi.Input[str]
    code_root: str
    steps: Mapping[str, StepSummary]
    images: pulumi.Input[Mapping[str, pulumi.Input[str]]]
    version_retention: int
    """Enabled versions kept; its default lives in Pulumi.yaml only (`versionRetention`)."""
    description: str = ""
    parameters: Mapping[str, ParameterSummary] = field(default_factory=dict)
    registry_identities: Mapping[str, IdentityInput] = field(default_factory=dict)
    """Cluster name -> the identity that pulls the image there."""
    adopt_existing: bool = False


@dataclass(frozen=True)
class PipelineScheduleArgs:
    """Inputs of :class:`PipelineSchedule` (see :class:`infra.provider.props.ScheduleInputs`)."""

    workspace: WorkspaceArgs
    owner: Owner
    name: str
    endpoint_id: pulumi.Input[str]
    experiment: str
    recurrence: Recurrence
    description: str = ""
    parameters: Mapping[str, ParameterValue] = field(default_factory=dict)
    enabled: bool = True
    """Whether the schedule runs: the definition's `enabled` and the stack's
    `schedulesEnabled` together."""


def _workspace_props(workspace: WorkspaceArgs, owner: Owner) -> dict[str, Any]:
    return {
        "subscription_id": workspace.subscription_id,
        "resource_group": workspace.resource_group,
        "workspace_name": workspace.workspace_name,
        "owner": {"project": owner.project, "stack": owner.stack},
    }


def _identity_props(identity: IdentityInput) -> pulumi.Input[dict[str, str]]:
    if isinstance(identity, RegistryIdentity):
        return dataclasses.asdict(identity)
    return identity.apply(dataclasses.asdict)


def endpoint_props(args: PipelineEndpointArgs) -> dict[str, Any]:
    """The wire dict of an endpoint's inputs (plain values stay plain, inputs stay inputs)."""
    return {
        **_workspace_props(args.workspace, args.owner),
        "name": args.name,
        "description": args.description,
        "content_hash": args.content_hash,
        "code_root": args.code_root,
        "steps": {k: dump(v) for k, v in args.steps.items()},
        "parameters": {k: dump(v) for k, v in args.parameters.items()},
        "images": args.images,
        "registry_identities": {k: _identity_props(v) for k, v in args.registry_identities.items()},
        "version_retention": args.version_retention,
        "adopt_existing": args.adopt_existing,
    }


def schedule_props(args: PipelineScheduleArgs) -> dict[str, Any]:
    """The wire dict of a schedule's inputs; parameter values travel as JSON text, because the
    engine returns every number as a float (and Azure tells int from float)."""
    return {
        **_workspace_props(args.workspace, args.owner),
        "name": args.name,
        "endpoint_id": args.endpoint_id,
        "experiment": args.experiment,
        "description": args.description,
        "recurrence": dump(args.recurrence),
        "recurrence_text": describe(args.recurrence),
        "parameters": {k: json.dumps(v) for k, v in sorted(args.parameters.items())},
        "enabled": args.enabled,
    }


class PipelineEndpoint(Resource, module="azureml", name="PipelineEndpoint"):
    """A published pipeline behind a stable REST endpoint; id = the endpoint id."""

    # Output attributes for type checkers only: see the module docstring.
    if TYPE_CHECKING:
        endpoint_id: pulumi.Output[str]
        rest_url: pulumi.Output[str]
        status: pulumi.Output[str]
        default_version: pulumi.Output[str]
        published_pipeline_id: pulumi.Output[str]
        content_hash: pulumi.Output[str]
        default_content_hash: pulumi.Output[str]
        enabled_versions: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: PipelineEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props = {**endpoint_props(args), **dict.fromkeys(_ENDPOINT_OUTPUTS)}
        reset_pickler()
        super().__init__(PipelineEndpointProvider(), name, props, opts)


class PipelineSchedule(Resource, module="azureml", name="PipelineSchedule"):
    """A recurring schedule on a pipeline endpoint; id = the schedule id."""

    # Output attributes for type checkers only: see the module docstring.
    if TYPE_CHECKING:
        schedule_id: pulumi.Output[str]
        enabled: pulumi.Output[bool]
        """Live: false when the schedule is paused (by the stack, or disabled out of band)."""

    def __init__(
        self, name: str, args: PipelineScheduleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props = {**schedule_props(args), **dict.fromkeys(_SCHEDULE_OUTPUTS)}
        reset_pickler()
        super().__init__(PipelineScheduleProvider(), name, props, opts)
