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

Ownership: every object the provider makes (published pipeline, endpoint, schedule) records the
stack that made it (:class:`Owner`), and every record read back reports it (``owner``; None when
nothing or something unreadable is recorded). The provider adopts, reuses or undoes only what its
own stack owns. Azure ML v1 offers no tags on these objects, only a description, so the Azure
adapter appends :meth:`Owner.stamp` to the description it sends (``Pipeline.publish(description=)``,
``PipelineEndpoint.publish(description)``, ``Schedule.create_for_pipeline_endpoint(description=)``
and ``Schedule.update(description=)``) and reads it back with :func:`read_stamp`, returning the
description without the stamp. The local adapter keeps the owner in its own column.
"""

from __future__ import annotations

import re
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
class Owner:
    """The Pulumi project and stack that made an object (recorded on the object itself)."""

    project: str
    stack: str

    def label(self) -> str:
        """`project/stack`, as messages show it."""
        return f"{self.project}/{self.stack}"

    def stamp(self, description: str) -> str:
        """`description` with this owner recorded on its last line (see :func:`read_stamp`)."""
        mark = f"{_STAMP_OPEN}{self.project}/{self.stack}{_STAMP_CLOSE}"
        return f"{description}\n\n{mark}" if description else mark


_STAMP_OPEN = "[amlpipe-owner: "
_STAMP_CLOSE = "]"
# Project and stack names never hold "/" or "]" (Pulumi allows letters, digits, "-", "_", ".").
_STAMP = re.compile(r"(?:\n\n)?\[amlpipe-owner: ([^/\]\n]+)/([^/\]\n]+)\]\Z")


def read_stamp(text: str | None) -> tuple[str, Owner | None]:
    """Split a description written by :meth:`Owner.stamp` into (description, owner); a text
    without a stamp is all description, with no owner."""
    text = text or ""
    found = _STAMP.search(text)
    if found is None:
        return text, None
    return text[: found.start()], Owner(found.group(1), found.group(2))


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
class RegistryIdentity:
    """A cluster's user-assigned managed identity, which pulls the image from the registry (it
    has AcrPull; no password anywhere). The same record travels from the compute cluster's
    outputs through the resource inputs to the compile step."""

    resource_id: str
    client_id: str = ""


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
    registry_identities: dict[str, RegistryIdentity] = field(default_factory=dict)
    """Cluster name -> the identity its jobs pull the image with."""
    owner: Owner | None = None
    """The stack publishing it, recorded on the published pipeline."""

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
    owner: Owner | None = None
    """The stack that published it (None: not published by this provider, or before owners)."""


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
    owner: Owner | None = None
    """The stack that created it (None: not created by this provider, or before owners)."""

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
    """Settings as the service reports them; `description` without the owner stamp."""
    owner: Owner | None = None
    """The stack that created it (None: not created by this provider, or before owners)."""


class Backend(Protocol):
    """Azure ML v1 operations on one workspace. Methods are one service call each where possible."""

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Publish a new version of a pipeline (always a new id); named after its endpoint,
        owned by `build.owner`."""
        ...

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines called `name`, oldest first, whoever owns them (to find
        what an interrupted run left; callers filter by owner)."""
        ...

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline (it can no longer be submitted; never deleted)."""
        ...

    def create_endpoint(
        self, name: str, description: str, pipeline_id: str, owner: Owner
    ) -> EndpointRecord:
        """Create an endpoint owned by `owner` whose version "0" (the default) is `pipeline_id`;
        fails when an active endpoint has the name."""
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
        self,
        name: str,
        endpoint_id: str,
        experiment: str,
        settings: ScheduleSettings,
        owner: Owner,
    ) -> ScheduleRecord:
        """Create a schedule owned by `owner` on an endpoint, with `settings.status`."""
        ...

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """Change recurrence, description, parameter values and status in one call; the
        recorded owner stays as it is."""
        ...

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule with this id; None when absent."""
        ...

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules called `name` on an endpoint, any status, any owner (to adopt an interrupted
        create; callers filter by owner)."""
        ...


class BackendError(RuntimeError):
    """A backend operation failed; the message names the operation and the object."""
