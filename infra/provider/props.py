"""Typed inputs and outputs of the dynamic resources, parsed once from the engine's dicts.

Inputs are *readable*: `pulumi preview --diff` shows them property by property, so a change reads
"steps.train.code_hash", "steps.train.args[1]", "images.training" or "recurrence.hours" rather than
one opaque hash. Values that must survive the engine exactly (parameter values, whose int/float
type matters on Azure) travel as JSON text, because the engine returns every number as a float.

The engine's dicts may also lack keys whose value was None, and during preview may hold the
"unknown" sentinel for values not computed yet; :func:`has_unknowns` detects those.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pulumi.output import Unknown
from pydantic import BaseModel, ConfigDict, Field

from infra.definitions.command import step_command
from infra.definitions.hashing import StepDigest, step_digests
from infra.definitions.loader import LoadedPipeline
from infra.definitions.model import PipelineSpec, Recurrence, Schedule
from infra.definitions.recurrence import describe, effective_recurrence
from infra.definitions.refs import Literal, parse_argument
from infra.provider.port import (
    EndpointRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
    WorkspaceRef,
)

PROVIDER_KEY = "__provider"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The wire marker for a value not known during preview (``pulumi.runtime.rpc.UNKNOWN``); the
host turns it into a :class:`pulumi.output.Unknown` before check and diff see it."""

SHORT_HASH = 16


class _Props(BaseModel):
    # extra="ignore": the engine adds `__provider`; older states may carry retired keys.
    model_config = ConfigDict(extra="ignore", frozen=True)


def has_unknowns(value: Any) -> bool:
    """Whether a (nested) engine value holds the preview "unknown" marker."""
    if isinstance(value, Unknown):
        return True
    if isinstance(value, str):
        return value == UNKNOWN
    if isinstance(value, Mapping):
        return any(has_unknowns(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_unknowns(v) for v in value)
    return False


def unknown_keys(props: Mapping[str, Any]) -> list[str]:
    """Top-level keys whose value is (or holds) unknown."""
    return sorted(k for k, v in props.items() if k != PROVIDER_KEY and has_unknowns(v))


class WorkspaceProps(_Props):
    """Where a resource lives. Changing any of these replaces the resource."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    def workspace(self) -> WorkspaceRef:
        """As the port's record."""
        return WorkspaceRef(self.subscription_id, self.resource_group, self.workspace_name)


WORKSPACE_KEYS = ("subscription_id", "resource_group", "workspace_name")


class StepSummary(_Props):
    """What a step runs, in words (shown by `preview --diff`; the content hash covers the rest)."""

    kind: str
    run: str
    """`train.py`, `Rscript fit.R` or the command line."""
    code: str
    code_hash: str
    """First characters of the code folder's digest."""
    args: list[str] = Field(default_factory=list)
    compute: str
    image: str
    """Image key; its reference is in the endpoint's `images`."""
    outputs: list[str] = Field(default_factory=list)
    after: list[str] = Field(default_factory=list)
    allow_reuse: bool = True
    environment: dict[str, str] = Field(default_factory=dict)


class ParameterSummary(_Props):
    """A pipeline parameter: type and default (as JSON text, exact through the engine)."""

    type: str
    default: str


class RegistryIdentityProps(_Props):
    """A cluster's user-assigned managed identity, which pulls the image from the registry."""

    resource_id: str
    client_id: str = ""


class EndpointInputs(WorkspaceProps):
    """Inputs of a PipelineEndpoint resource."""

    name: str
    description: str = ""
    experiment: str
    content_hash: str
    code_root: str
    """Pipeline folder relative to the project root (where the provider host runs)."""
    steps: dict[str, StepSummary]
    parameters: dict[str, ParameterSummary] = Field(default_factory=dict)
    images: dict[str, str] = Field(default_factory=dict)
    registry_identities: dict[str, RegistryIdentityProps] = Field(default_factory=dict)
    """Cluster name -> identity the cluster pulls the image with (AcrPull; no password)."""
    version_retention: int = Field(default=2, ge=1)
    adopt_existing: bool = False
    """Adopt an endpoint of this name that already exists (Pulumi cannot import dynamic ones)."""

    def version_key(self) -> str:
        """What a published version is recognised by: the content hash, plus the registry
        identities when given (they change the published environments but not the definition)."""
        if not self.registry_identities:
            return self.content_hash
        identities = json.dumps(
            {k: v.model_dump() for k, v in self.registry_identities.items()}, sort_keys=True
        )
        return hashlib.sha256(f"{self.content_hash}\0{identities}".encode()).hexdigest()


ENDPOINT_REPLACE_KEYS = ("name", *WORKSPACE_KEYS)


class EndpointOutputs(EndpointInputs):
    """Outputs: the inputs plus what the service reports."""

    endpoint_id: str
    rest_url: str
    status: str
    default_version: str
    published_pipeline_id: str
    default_content_hash: str
    """Version key recorded on the default version: differs from `version_key()` on drift."""
    enabled_versions: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, inputs: EndpointInputs, endpoint: EndpointRecord) -> EndpointOutputs:
        """Combine desired inputs and an endpoint as read from the service."""
        default = endpoint.default
        enabled = [v.version for v in endpoint.versions if v.pipeline.status is Status.ACTIVE]
        return cls(
            **inputs.model_dump(),
            endpoint_id=endpoint.id,
            rest_url=endpoint.rest_url,
            status=endpoint.status.value,
            default_version=endpoint.default_version,
            published_pipeline_id=default.pipeline.id,
            default_content_hash=default.pipeline.version_tag,
            enabled_versions=enabled,
        )

    def inputs(self) -> EndpointInputs:
        """The input part."""
        return EndpointInputs.model_validate(
            self.model_dump(include=set(EndpointInputs.model_fields))
        )

    def in_sync(self) -> bool:
        """Whether the live endpoint serves what the inputs asked for (no drift)."""
        return (
            self.status == Status.ACTIVE.value and self.default_content_hash == self.version_key()
        )


class ScheduleInputs(WorkspaceProps):
    """Inputs of a PipelineSchedule resource."""

    name: str
    endpoint_id: str
    experiment: str
    description: str = ""
    recurrence: Recurrence
    recurrence_text: str = ""
    parameters: dict[str, str] = Field(default_factory=dict)
    """Parameter name -> value as JSON text."""
    enabled: bool = True

    def settings(self) -> ScheduleSettings:
        """What the schedule should do, as the port's record."""
        return ScheduleSettings(
            recurrence=self.recurrence,
            description=self.description,
            parameters={k: json.loads(v) for k, v in self.parameters.items()},
            status=Status.ACTIVE if self.enabled else Status.DISABLED,
        )


SCHEDULE_REPLACE_KEYS = ("name", "endpoint_id", *WORKSPACE_KEYS)


class ScheduleOutputs(ScheduleInputs):
    """Outputs: what the service reports (live settings, so refresh shows drift) plus the id."""

    schedule_id: str
    status: str

    @classmethod
    def of(cls, inputs: ScheduleInputs, schedule: ScheduleRecord) -> ScheduleOutputs:
        """Desired identity plus the live settings of `schedule`."""
        live = schedule.settings
        return cls(
            **inputs.model_dump(
                exclude={"recurrence", "recurrence_text", "description", "parameters", "enabled"}
            ),
            recurrence=live.recurrence,
            recurrence_text=describe(live.recurrence),
            description=live.description,
            parameters=(
                inputs.parameters if live.parameters is None else _json_values(live.parameters)
            ),
            enabled=live.status is Status.ACTIVE,
            schedule_id=schedule.id,
            status=live.status.value,
        )

    def inputs(self) -> ScheduleInputs:
        """The input part."""
        return ScheduleInputs.model_validate(
            self.model_dump(include=set(ScheduleInputs.model_fields))
        )


def _json_values(values: Mapping[str, Any]) -> dict[str, str]:
    return {k: json.dumps(v) for k, v in sorted(values.items())}


def strip(props: Mapping[str, Any]) -> dict[str, Any]:
    """The engine's dict without the serialized provider."""
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the engine wants it: plain JSON values, None fields left out."""
    return model.model_dump(mode="json", exclude_none=True)


# -- building inputs from a definition (used by the program) -----------------------------------


def _arg_text(arg: str | int | float | bool) -> str:
    token = parse_argument(arg)
    return token.value if isinstance(token, Literal) else str(arg)


def step_summaries(spec: PipelineSpec, code_hashes: Mapping[str, str]) -> dict[str, StepSummary]:
    """Readable summary of each step; `code_hashes` maps step name -> code digest."""
    return {
        step.name: StepSummary(
            kind=step.kind,
            run=step_command(step).text(),
            code=step.code,
            code_hash=code_hashes[step.name][:SHORT_HASH],
            args=[_arg_text(a) for a in step.args],
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
    """Each parameter's type and default."""
    return {
        name: ParameterSummary(type=p.type.value, default=json.dumps(p.default))
        for name, p in spec.parameters.items()
    }


def code_root_of(loaded: LoadedPipeline, project_root: Path) -> str:
    """The pipeline folder relative to the project root, POSIX form."""
    return loaded.folder.resolve().relative_to(project_root.resolve()).as_posix()


def schedule_settings_inputs(schedule: Schedule, schedules_enabled: bool) -> dict[str, Any]:
    """The schedule-specific input values (recurrence, text, parameters, enabled)."""
    recurrence = effective_recurrence(schedule)
    return {
        "description": schedule.description,
        "recurrence": dump(recurrence),
        "recurrence_text": describe(recurrence),
        "parameters": _json_values(schedule.parameters),
        "enabled": schedule.enabled and schedules_enabled,
    }


def endpoint_static_props(
    loaded: LoadedPipeline, project_root: Path, steps: Mapping[str, StepDigest] | None = None
) -> dict[str, Any]:
    """The endpoint inputs known without image references (everything but hash and images);
    `steps` are the step digests when the caller already has them (code is read once)."""
    spec = loaded.spec
    digests = steps if steps is not None else step_digests(loaded)
    code = {name: d.code.digest for name, d in digests.items()}
    return {
        "name": spec.name,
        "description": spec.description,
        "experiment": spec.experiment,
        "code_root": code_root_of(loaded, project_root),
        "steps": {k: dump(v) for k, v in step_summaries(spec, code).items()},
        "parameters": {k: dump(v) for k, v in parameter_summaries(spec).items()},
    }


def schedule_name(spec: PipelineSpec, schedule: Schedule) -> str:
    """Azure name of a schedule: `<pipeline>-<schedule>` (unique in the workspace)."""
    return f"{spec.name}-{schedule.name}"
