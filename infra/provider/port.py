"""The backend port: the few Azure ML v1 operations the dynamic provider needs, as typed records.

Two adapters implement it: :mod:`infra.provider.azureml_v1` (the real service) and
:mod:`infra.provider.local_backend` (SQLite, same rules, for tests and local stacks).
The rules every adapter follows are Azure ML v1's:

- every publish creates a new published pipeline with a new id;
- published pipelines and schedules are never deleted, only disabled;
- an endpoint has exactly one default version; versions are "0", "1", ... in order of addition;
- active endpoint names are unique in a workspace; archiving renames the endpoint to a random
  name and disables it (that is what ``PipelineEndpoint.archive`` does), so the name is free again
  and the endpoint can be reactivated under a name later;
- a schedule targets one endpoint for life (``Schedule.update`` cannot retarget it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from infra.definitions.model import PipelineSpec, Recurrence


class Status(StrEnum):
    """Status values Azure ML v1 uses for published pipelines, endpoints and schedules (the
    service's entity status enum: 0 Active, 1 Deprecated, 2 Disabled). Anything but ACTIVE is out
    of service: a deprecated version is never made the default again."""

    ACTIVE = "Active"
    DEPRECATED = "Deprecated"
    DISABLED = "Disabled"


@dataclass(frozen=True)
class WorkspaceRef:
    """Coordinates of an Azure ML workspace (no credentials: those come from the environment)."""

    subscription_id: str
    resource_group: str
    workspace_name: str

    def key(self) -> str:
        """A stable single-string key (the local store namespaces everything by it)."""
        return f"{self.subscription_id}/{self.resource_group}/{self.workspace_name}"


@dataclass(frozen=True)
class PipelineBuild:
    """Everything a backend needs to publish one version of a pipeline (already verified against
    the content hash of the resource inputs, see :func:`infra.provider.build.load_build`)."""

    name: str
    """Published pipeline name: the endpoint name (lets a retry find what a failed run left)."""
    spec: PipelineSpec
    folder: Path
    """The pipeline folder on disk; step code folders are relative to it."""
    images: dict[str, str]
    """Image key -> registry reference."""
    content_hash: str
    """Digest of the definition, code and image references (checked against the files)."""
    version_key: str = ""
    """Recorded as the published pipeline's version: the content hash, extended with the
    registry identities when there are any (see `EndpointInputs.version_key`)."""
    registry_identities: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Cluster name -> (identity resource id, client id) used to pull the image."""

    @property
    def version_tag(self) -> str:
        """What the published version records: the version key, or the content hash when no
        key was given (every backend tags a publish with this, so retries recognise it)."""
        return self.version_key or self.content_hash


@dataclass(frozen=True)
class PublishedPipelineRecord:
    """A published pipeline: ``name`` and ``version_tag`` are what we recorded at publish time."""

    id: str
    name: str
    version_tag: str
    """The ``version`` given to ``Pipeline.publish``: our content hash (to recognise our work)."""
    status: Status


@dataclass(frozen=True)
class EndpointVersion:
    """One version of an endpoint and the published pipeline behind it."""

    version: str
    pipeline: PublishedPipelineRecord


@dataclass(frozen=True)
class EndpointRecord:
    """A pipeline endpoint as the service reports it."""

    id: str
    name: str
    status: Status
    default_version: str
    rest_url: str
    versions: tuple[EndpointVersion, ...] = field(default_factory=tuple)

    def version(self, version: str) -> EndpointVersion:
        """The version called `version` (KeyError when absent)."""
        for item in self.versions:
            if item.version == version:
                return item
        raise KeyError(version)

    @property
    def default(self) -> EndpointVersion:
        """The default version."""
        return self.version(self.default_version)


@dataclass(frozen=True)
class ScheduleSettings:
    """What a schedule does, apart from its name and target (which never change)."""

    recurrence: Recurrence
    description: str = ""
    parameters: dict[str, str | int | float | bool] | None = field(default_factory=dict)
    """Parameter values; None when the service does not report them (Azure ML v1's `Schedule`
    object does not expose them), in which case an update always rewrites them."""
    status: Status = Status.ACTIVE


@dataclass(frozen=True)
class ScheduleRecord:
    """A schedule as the service reports it."""

    id: str
    name: str
    endpoint_id: str
    experiment: str
    settings: ScheduleSettings


class Backend(Protocol):
    """Azure ML v1 operations on one workspace. Methods are one service call each where possible."""

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Publish a new version of a pipeline (always a new id); named after its endpoint."""
        ...

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines called `name` (to find what an interrupted run left)."""
        ...

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline (it can no longer be submitted; never deleted)."""
        ...

    def create_endpoint(self, name: str, description: str, pipeline_id: str) -> EndpointRecord:
        """Create an endpoint whose version "0" (the default) is `pipeline_id`."""
        ...

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """The endpoint with this id, or the active one with this name; None when absent."""
        ...

    def add_default_version(self, endpoint_id: str, pipeline_id: str) -> EndpointRecord:
        """Add a published pipeline as a new version and make it the default."""
        ...

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """Make an existing version the default."""
        ...

    def archive_endpoint(self, endpoint_id: str) -> None:
        """Archive (disable and rename to a random name) an endpoint."""
        ...

    def reactivate_endpoint(self, endpoint_id: str, name: str) -> EndpointRecord:
        """Bring an archived endpoint back under `name`."""
        ...

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, settings: ScheduleSettings
    ) -> ScheduleRecord:
        """Create a schedule on an endpoint (created active; disabled right after if asked)."""
        ...

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """Change recurrence, description, parameter values and status in one call."""
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule with this id; None when absent."""
        ...

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules called `name` on an endpoint, any status (to adopt an interrupted create)."""
        ...


class BackendError(RuntimeError):
    """A backend operation failed; the message names the operation and the object."""
