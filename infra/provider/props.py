"""Typed inputs and outputs of the dynamic resources, parsed once from the engine's dicts.

The program builds these inputs in :mod:`infra.components.pipelines` (typed Args of
:mod:`infra.provider.resources`, which turns them into the wire dict); the provider parses the
wire dict back into the models below, once per call.

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
from typing import Any

from pulumi.output import Unknown
from pydantic import BaseModel, ConfigDict, Field

from infra.definitions.model import Recurrence
from infra.definitions.recurrence import describe
from infra.provider.port import (
    EndpointRecord,
    Owner,
    RegistryIdentity,
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


class OwnerProps(_Props):
    """The Pulumi project and stack a resource belongs to: recorded on every object the provider
    makes, so that it only ever adopts, reuses or undoes its own stack's objects."""

    project: str = Field(min_length=1)
    stack: str = Field(min_length=1)

    def record(self) -> Owner:
        """As the port's record."""
        return Owner(self.project, self.stack)


class OwnedProps(WorkspaceProps):
    """Workspace coordinates plus the owning stack."""

    owner: OwnerProps | None = None
    """Always set by the program (check refuses inputs without it); None only in states written
    before owners were recorded."""

    def owner_record(self) -> Owner | None:
        """The owner as the port's record (None for states written before owners)."""
        return None if self.owner is None else self.owner.record()


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
    """A cluster's user-assigned managed identity, which pulls the image from the registry
    (the wire form of :class:`infra.provider.port.RegistryIdentity`)."""

    resource_id: str
    client_id: str = ""

    def record(self) -> RegistryIdentity:
        """As the port's record."""
        return RegistryIdentity(self.resource_id, self.client_id)


class EndpointInputs(OwnedProps):
    """Inputs of a PipelineEndpoint resource.

    No experiment: a published pipeline has none (whoever submits a run names it), so it is
    neither an input nor part of the content hash; the Pipelines component exports it per
    pipeline for REST and Data Factory callers."""

    name: str
    description: str = ""
    content_hash: str
    code_root: str
    """Pipeline folder relative to the project root (where the provider host runs)."""
    steps: dict[str, StepSummary]
    parameters: dict[str, ParameterSummary] = Field(default_factory=dict)
    images: dict[str, str] = Field(default_factory=dict)
    registry_identities: dict[str, RegistryIdentityProps] = Field(default_factory=dict)
    """Cluster name -> identity the cluster pulls the image with (AcrPull; no password)."""
    version_retention: int = Field(ge=1)
    """Required: its default lives in Pulumi.yaml (`versionRetention`), nowhere else."""
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

    def identities(self) -> dict[str, RegistryIdentity]:
        """Cluster name -> identity, as the port's records."""
        return {k: v.record() for k, v in self.registry_identities.items()}


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


class ScheduleInputs(OwnedProps):
    """Inputs of a PipelineSchedule resource."""

    name: str
    endpoint_id: str
    experiment: str
    """The experiment scheduled runs are submitted under, fixed at creation: Azure ML's
    `Schedule.update` cannot change it, and a replacement under the same name would find the
    old schedule as its own leftover, so a change is refused with what to do instead."""
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
    """Outputs: what the service reports (live settings, so refresh shows drift: `enabled` is
    the live status) plus the id."""

    schedule_id: str

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
