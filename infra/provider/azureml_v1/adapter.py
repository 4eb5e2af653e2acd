"""The backend port on a real Azure ML v1 workspace (azureml-pipeline-core).

Every service call goes through :func:`.retry.call`. Writes are idempotent on retry: a write whose
response was lost (a transient error after the service may have acted) is not repeated blindly;
the adapter first reads back whether it took effect and treats "already done" as done, so a
retried publish never makes a second published pipeline and a retried `add_default` never fails
with "pipeline already present".

Tests give the adapter a workspace and azureml's workflow provider over its own dry-run service
caller; in production both are made from the workspace coordinates and the environment's
credentials (:mod:`.auth`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from infra.provider.azureml_v1 import retry
from infra.provider.azureml_v1.auth import Authenticator
from infra.provider.azureml_v1.compile import compile_steps
from infra.provider.azureml_v1.recurrence import (
    PAUSED_START_TIME,
    make_recurrence,
    recurrence_from_azure,
)
from infra.provider.port import (
    BackendError,
    EndpointRecord,
    EndpointVersion,
    Owner,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
    WorkspaceRef,
    read_stamp,
)

T = TypeVar("T")


def write(what: str, do: Callable[[], T], done: Callable[[], T | None]) -> T:
    """Run a write with retries; before repeating it, ask `done` whether the previous attempt
    took effect (its response may have been lost) and return what it found if so."""
    attempted = False

    def attempt() -> T:
        nonlocal attempted
        if attempted:
            found = done()
            if found is not None:
                return found
        attempted = True
        return do()

    return retry.call(what, attempt)


def _published(pipeline: Any) -> PublishedPipelineRecord:
    _, owner = read_stamp(pipeline.description)
    return PublishedPipelineRecord(
        pipeline.id, pipeline.name, pipeline.version or "", Status(pipeline.status), owner
    )


class AzureMLBackend:
    """The backend port on a real Azure ML workspace."""

    def __init__(
        self,
        workspace: WorkspaceRef,
        *,
        azure_workspace: Any = None,
        workflow_provider: Any = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.ref = workspace
        self._workspace = azure_workspace
        self._provider = workflow_provider
        self._authenticator = authenticator

    def workspace(self) -> Any:
        """The azureml Workspace, authenticated from the environment (made on first use)."""
        if self._workspace is None:
            from azureml.core import Workspace

            authenticator = self._authenticator or Authenticator()
            auth = authenticator.azureml_auth()
            # A token first, so a credential problem is reported as such (with what to set),
            # not as whatever the SDK makes of it.
            authenticator.token_for(auth._cloud_type.endpoints.active_directory_resource_id)
            self._workspace = retry.call(
                f"get workspace {self.ref.workspace_name}",
                lambda: Workspace(
                    self.ref.subscription_id,
                    self.ref.resource_group,
                    self.ref.workspace_name,
                    auth=auth,
                ),
            )
        return self._workspace

    def provider(self) -> Any:
        """azureml's workflow provider for this workspace: every SDK call below goes through it
        (made as `_GraphContext` makes it when none is given; tests give one over the SDK's
        dry-run service caller)."""
        if self._provider is None:
            from azureml.pipeline.core._aeva_provider import _AevaWorkflowProvider

            self._provider = _AevaWorkflowProvider.create_provider(self.workspace(), "placeholder")
        return self._provider

    # -- reads --------------------------------------------------------------------------------

    def _published_pipeline(self, pipeline_id: str) -> Any:
        from azureml.pipeline.core import PublishedPipeline

        return retry.call(
            f"get published pipeline {pipeline_id}",
            lambda: PublishedPipeline.get(
                self.workspace(), pipeline_id, _workflow_provider=self.provider()
            ),
        )

    def _endpoint_object(self, endpoint_id: str) -> Any:
        from azureml.pipeline.core import PipelineEndpoint

        return retry.call(
            f"get pipeline endpoint {endpoint_id}",
            lambda: PipelineEndpoint.get(
                self.workspace(), id=endpoint_id, _workflow_provider=self.provider()
            ),
        )

    def _endpoint_record(self, endpoint: Any) -> EndpointRecord:
        versions = tuple(
            EndpointVersion(str(v.version), _published(v.pipeline))
            for v in retry.call(f"list versions of {endpoint.name}", endpoint.list_versions)
        )
        return EndpointRecord(
            endpoint.id,
            endpoint.name,
            Status(endpoint.status),
            str(endpoint.default_version),
            endpoint.endpoint,
            versions,
            read_stamp(endpoint.description)[1],
        )

    def _endpoint(self, endpoint_id: str) -> EndpointRecord:
        return self._endpoint_record(self._endpoint_object(endpoint_id))

    # -- published pipelines -------------------------------------------------------------------

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Compile, upload code and publish; the version records the content hash."""
        from azureml.pipeline.core import Pipeline

        version = build.version_tag
        # Azure ML v1 objects have no tags: the owner is recorded in the description.
        description = build.spec.description
        if build.owner is not None:
            description = build.owner.stamp(description)
        compiled = compile_steps(build.spec, build.folder, build.images, build.registry_identities)
        pipeline = Pipeline(
            workspace=self.workspace(),
            steps=compiled.steps,
            description=build.spec.description,
            _workflow_provider=self.provider(),
        )

        def done() -> PublishedPipelineRecord | None:
            found = [
                p
                for p in self.find_published(build.name)
                if p.version_tag == version and p.owner == build.owner
            ]
            return found[-1] if found else None

        return write(
            f"publish pipeline {build.name}",
            lambda: _published(
                pipeline.publish(name=build.name, description=description, version=version)
            ),
            done,
        )

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines of this name."""
        # What `PublishedPipeline.list` does, on this adapter's workflow provider.
        found = retry.call(
            "list published pipelines",
            lambda: self.provider().published_pipeline_provider.get_all(active_only=True),
        )
        return [
            record
            for record in (_published(p) for p in found if p.name == name)
            if record.status is Status.ACTIVE
        ]

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline (idempotent: disabling twice is a no-op)."""
        pipeline = self._published_pipeline(pipeline_id)
        retry.call(f"disable published pipeline {pipeline_id}", pipeline.disable)

    # -- endpoints ----------------------------------------------------------------------------

    def create_endpoint(
        self, name: str, description: str, pipeline_id: str, owner: Owner
    ) -> EndpointRecord:
        """`PipelineEndpoint.publish` with an already published pipeline; the owner is recorded
        in the description."""
        from azureml.pipeline.core import PipelineEndpoint

        pipeline = self._published_pipeline(pipeline_id)

        def done() -> EndpointRecord | None:
            found = self.get_endpoint(name=name)
            if found is not None and any(v.pipeline.id == pipeline_id for v in found.versions):
                return found
            return None

        return write(
            f"create pipeline endpoint {name}",
            lambda: self._endpoint_record(
                PipelineEndpoint.publish(
                    self.workspace(),
                    name,
                    owner.stamp(description),
                    pipeline,
                    _workflow_provider=self.provider(),
                )
            ),
            done,
        )

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """By id or name; None when the service says it does not exist (HTTP 404)."""
        from azureml.pipeline.core import PipelineEndpoint

        try:
            endpoint = retry.call(
                f"get pipeline endpoint {endpoint_id or name}",
                lambda: PipelineEndpoint.get(
                    self.workspace(), id=endpoint_id, name=name, _workflow_provider=self.provider()
                ),
            )
        except BackendError as exc:
            if retry.is_not_found(exc):
                return None
            raise
        return None if endpoint is None else self._endpoint_record(endpoint)

    def add_default_version(self, endpoint_id: str, pipeline_id: str) -> EndpointRecord:
        """`PipelineEndpoint.add_default`; when the pipeline is already a version (a retry after
        a lost response), that version is made the default instead."""
        endpoint = self._endpoint_object(endpoint_id)
        pipeline = self._published_pipeline(pipeline_id)

        def present() -> EndpointRecord | None:
            record = self._endpoint(endpoint_id)
            return record if any(v.pipeline.id == pipeline_id for v in record.versions) else None

        record = present()
        if record is None:
            write(
                f"add default version to {endpoint.name}",
                lambda: endpoint.add_default(pipeline),
                present,
            )
            record = self._endpoint(endpoint_id)
        (version,) = [v.version for v in record.versions if v.pipeline.id == pipeline_id]
        if record.default_version != version:
            record = self.set_default_version(endpoint_id, version)
        return record

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """`PipelineEndpoint.set_default_version` (idempotent)."""
        endpoint = self._endpoint_object(endpoint_id)
        retry.call(
            f"set default version of {endpoint.name}",
            lambda: endpoint.set_default_version(version),
        )
        return self._endpoint(endpoint_id)

    def archive_endpoint(self, endpoint_id: str) -> None:
        """`PipelineEndpoint.archive`, unless a lost earlier attempt already archived it."""
        endpoint = self._endpoint_object(endpoint_id)

        def done() -> bool | None:
            return True if self._endpoint(endpoint_id).status is not Status.ACTIVE else None

        if Status(endpoint.status) is Status.ACTIVE:
            write(f"archive pipeline endpoint {endpoint.name}", endpoint.archive, done)

    def reactivate_endpoint(self, endpoint_id: str, name: str) -> EndpointRecord:
        """`PipelineEndpoint.reactivate` (idempotent: active under `name` is done)."""
        endpoint = self._endpoint_object(endpoint_id)

        def done() -> EndpointRecord | None:
            record = self._endpoint(endpoint_id)
            return record if record.status is Status.ACTIVE and record.name == name else None

        write(
            f"reactivate pipeline endpoint {name}",
            lambda: endpoint.reactivate(name),
            done,
        )
        return self._endpoint(endpoint_id)

    # -- schedules ----------------------------------------------------------------------------

    def _schedule_record(self, schedule: Any) -> ScheduleRecord:
        description, owner = read_stamp(schedule.description)
        settings = ScheduleSettings(
            recurrence=recurrence_from_azure(schedule.recurrence),
            description=description,
            parameters=None,  # not exposed by azureml's Schedule object
            status=Status(schedule.status),
        )
        return ScheduleRecord(
            schedule.id, schedule.name, schedule.pipeline_endpoint_id or "", "", settings, owner
        )

    def _schedule_object(self, schedule_id: str) -> Any:
        from azureml.pipeline.core import Schedule

        return retry.call(
            f"get schedule {schedule_id}",
            lambda: Schedule.get(self.workspace(), schedule_id, _workflow_provider=self.provider()),
        )

    def _schedule_objects(self, endpoint_id: str, name: str) -> list[Any]:
        from azureml.pipeline.core import Schedule

        found = retry.call(
            f"list schedules of endpoint {endpoint_id}",
            lambda: Schedule.list(
                self.workspace(),
                active_only=False,
                pipeline_endpoint_id=endpoint_id,
                _workflow_provider=self.provider(),
            ),
        )
        return [s for s in found if s.name == name]

    def create_schedule(
        self,
        name: str,
        endpoint_id: str,
        experiment: str,
        settings: ScheduleSettings,
        owner: Owner,
    ) -> ScheduleRecord:
        """`Schedule.create_for_pipeline_endpoint`, so that it never fires at creation.

        Azure ML creates every schedule active. An active one gets a start time in the past (its
        first run is the next computed time); a paused one is created with a start time far in
        the future, then disabled in the same update that gives it its real recurrence.
        """
        from azureml.pipeline.core import Schedule

        paused = settings.status is not Status.ACTIVE
        start = PAUSED_START_TIME if paused else None

        def done() -> Any:
            found = [
                s
                for s in self._schedule_objects(endpoint_id, name)
                if read_stamp(s.description)[1] == owner
            ]
            return found[0] if found else None

        schedule = write(
            f"create schedule {name}",
            lambda: Schedule.create_for_pipeline_endpoint(
                self.workspace(),
                name=name,
                pipeline_endpoint_id=endpoint_id,
                experiment_name=experiment,
                recurrence=make_recurrence(settings.recurrence, start_time=start),
                description=owner.stamp(settings.description),
                pipeline_parameters=settings.parameters or None,
                _workflow_provider=self.provider(),
            ),
            done,
        )
        if paused:
            self._update(schedule, settings)
        return self._schedule_record(schedule)

    def _update(self, schedule: Any, settings: ScheduleSettings) -> None:
        owner = read_stamp(schedule.description)[1]  # kept as it is
        description = settings.description if owner is None else owner.stamp(settings.description)
        retry.call(
            f"update schedule {schedule.name}",
            lambda: schedule.update(
                description=description,
                recurrence=make_recurrence(settings.recurrence),
                pipeline_parameters=settings.parameters,
                status=Status.ACTIVE.value
                if settings.status is Status.ACTIVE
                else Status.DISABLED.value,
            ),
        )

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """`Schedule.update` with recurrence, description, parameters and status at once."""
        schedule = self._schedule_object(schedule_id)
        self._update(schedule, settings)
        return self._schedule_record(schedule)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """`Schedule.get`; None when it does not exist (HTTP 404)."""
        try:
            schedule = self._schedule_object(schedule_id)
        except BackendError as exc:
            if retry.is_not_found(exc):
                return None
            raise
        return None if schedule is None else self._schedule_record(schedule)

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules of this name on this endpoint, any status."""
        return [self._schedule_record(s) for s in self._schedule_objects(endpoint_id, name)]
