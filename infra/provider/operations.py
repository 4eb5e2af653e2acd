"""What create/update/delete do to endpoints and schedules, written against the backend port.

Every procedure is *convergent*: it reads what exists, then makes only the writes still needed.
A run interrupted at any write (publish, add/set default, disable, schedule update) leaves a state
from which the next run finishes the job: it finds the published pipeline by name and content
hash instead of publishing again, finds the endpoint or schedule an interrupted create made
instead of creating a duplicate, and disables whatever is beyond the retention count.

Create is also transactional in the Pulumi sense: when the endpoint cannot be created, the
pipeline just published is disabled again (Azure cannot delete it), and an endpoint or schedule
a create made before failing is found and adopted by the retry, so none is duplicated.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from infra.provider.port import (
    Backend,
    BackendError,
    EndpointRecord,
    EndpointVersion,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
)
from infra.provider.props import EndpointInputs, ScheduleInputs

log = logging.getLogger(__name__)

BuildLoader = Callable[[], PipelineBuild]


def _publish_or_reuse(
    backend: Backend, want: EndpointInputs, load: BuildLoader
) -> PublishedPipelineRecord:
    """An active published pipeline of this name and content: reused if a failed run left one."""
    for published in reversed(backend.find_published(want.name)):
        if published.version_tag == want.version_key():
            return published
    return backend.publish_pipeline(load())


def _latest_matching(endpoint: EndpointRecord, version_key: str) -> EndpointVersion | None:
    matching = [
        v
        for v in endpoint.versions
        if v.pipeline.version_tag == version_key and v.pipeline.status is Status.ACTIVE
    ]
    return max(matching, key=lambda v: int(v.version), default=None)


def versions_to_keep(endpoint: EndpointRecord, retention: int) -> set[str]:
    """The default version plus the `retention - 1` newest other enabled versions."""
    others = sorted(
        (
            v
            for v in endpoint.versions
            if v.version != endpoint.default_version and v.pipeline.status is Status.ACTIVE
        ),
        key=lambda v: int(v.version),
        reverse=True,
    )
    return {endpoint.default_version, *(v.version for v in others[: retention - 1])}


def _prune(backend: Backend, endpoint: EndpointRecord, retention: int) -> None:
    """Disable enabled versions beyond retention, and published pipelines of this name that no
    version refers to (left by an interrupted run)."""
    keep = versions_to_keep(endpoint, retention)
    for item in endpoint.versions:
        if item.pipeline.status is Status.ACTIVE and item.version not in keep:
            backend.disable_pipeline(item.pipeline.id)
    attached = {v.pipeline.id for v in endpoint.versions}
    for published in backend.find_published(endpoint.name):
        if published.id not in attached:
            backend.disable_pipeline(published.id)


def converge_endpoint(
    backend: Backend, endpoint: EndpointRecord, want: EndpointInputs, load: BuildLoader
) -> EndpointRecord:
    """Make `endpoint` active, serving `want.content_hash` by default, pruned to retention."""
    if endpoint.status is not Status.ACTIVE:
        endpoint = backend.reactivate_endpoint(endpoint.id, want.name)
    match = _latest_matching(endpoint, want.version_key())
    if match is None:
        published = _publish_or_reuse(backend, want, load)
        endpoint = backend.add_default_version(endpoint.id, published.id)
    elif match.version != endpoint.default_version:
        endpoint = backend.set_default_version(endpoint.id, match.version)
    _prune(backend, endpoint, want.version_retention)
    return _require(backend, endpoint.id)


def _require(backend: Backend, endpoint_id: str) -> EndpointRecord:
    found = backend.get_endpoint(endpoint_id=endpoint_id)
    if found is None:
        raise BackendError(
            f"pipeline endpoint {endpoint_id} no longer exists; run `pulumi refresh` to forget it"
        )
    return found


def create_endpoint(backend: Backend, want: EndpointInputs, load: BuildLoader) -> EndpointRecord:
    """Publish and create the endpoint, or adopt the one an interrupted create left.

    When this call fails after writing, it undoes what it wrote (best effort: disables the
    published pipeline, archives the endpoint) so nothing is left enabled; if the undo fails
    too, the next run adopts the leftovers instead of duplicating them.
    """
    existing = backend.get_endpoint(name=want.name)
    if existing is not None:
        left_by_us = existing.default.pipeline.version_tag == want.version_key()
        if not (left_by_us or want.adopt_existing):
            raise BackendError(
                f"a pipeline endpoint named {want.name!r} already exists in workspace "
                f"{want.workspace_name!r} and was not made by this stack; set adopt_existing to "
                "take it over, or choose another name"
            )
        return converge_endpoint(backend, existing, want, load)
    try:
        published = _publish_or_reuse(backend, want, load)
        endpoint = backend.create_endpoint(want.name, want.description, published.id)
        return converge_endpoint(backend, endpoint, want, load)
    except Exception:
        _undo_create_endpoint(backend, want)
        raise


def _undo_create_endpoint(backend: Backend, want: EndpointInputs) -> None:
    # No endpoint had this name when the create started, so one that has it now is ours.
    try:
        endpoint = backend.get_endpoint(name=want.name)
        if endpoint is not None:
            delete_endpoint(backend, endpoint.id)
        for published in backend.find_published(want.name):
            if published.version_tag == want.version_key():
                backend.disable_pipeline(published.id)
    except Exception as exc:
        log.warning("could not undo the failed create of endpoint %s: %s", want.name, exc)


def update_endpoint(
    backend: Backend, endpoint_id: str, want: EndpointInputs, load: BuildLoader
) -> EndpointRecord:
    """Bring an existing endpoint to `want` (publishes only when no version has that content)."""
    return converge_endpoint(backend, _require(backend, endpoint_id), want, load)


def delete_endpoint(backend: Backend, endpoint_id: str) -> None:
    """Disable every version and archive the endpoint (Azure ML v1 deletes neither)."""
    endpoint = backend.get_endpoint(endpoint_id=endpoint_id)
    if endpoint is None:
        return
    for item in endpoint.versions:
        if item.pipeline.status is Status.ACTIVE:
            backend.disable_pipeline(item.pipeline.id)
    if endpoint.status is Status.ACTIVE:
        for published in backend.find_published(endpoint.name):
            backend.disable_pipeline(published.id)
        backend.archive_endpoint(endpoint.id)


# -- schedules ------------------------------------------------------------------------------------


def create_schedule(backend: Backend, want: ScheduleInputs) -> ScheduleRecord:
    """Create the schedule, or adopt the one an interrupted create left (same name and target)."""
    existing = backend.find_schedules(want.endpoint_id, want.name)
    if existing:
        adopted, *others = sorted(existing, key=lambda s: s.settings.status is Status.ACTIVE)[::-1]
        for extra in others:
            if extra.settings.status is Status.ACTIVE:
                backend.update_schedule(extra.id, _disabled(extra.settings))
        return converge_schedule(backend, adopted, want)
    try:
        return backend.create_schedule(
            want.name, want.endpoint_id, want.experiment, want.settings()
        )
    except Exception:
        _undo_create_schedule(backend, want)
        raise


def _disabled(settings: ScheduleSettings) -> ScheduleSettings:
    return ScheduleSettings(
        settings.recurrence, settings.description, settings.parameters, Status.DISABLED
    )


def _undo_create_schedule(backend: Backend, want: ScheduleInputs) -> None:
    # Azure ML creates a schedule active (a paused one is disabled by a second call) and cannot
    # delete it: disable what the failed create made, so nothing runs; the retry adopts it.
    try:
        for found in backend.find_schedules(want.endpoint_id, want.name):
            if found.settings.status is Status.ACTIVE:
                backend.update_schedule(found.id, _disabled(found.settings))
    except Exception as exc:
        log.warning("could not undo the failed create of schedule %s: %s", want.name, exc)


def converge_schedule(
    backend: Backend, current: ScheduleRecord, want: ScheduleInputs
) -> ScheduleRecord:
    """One update call when anything differs, none otherwise (parameter values the service
    does not report are rewritten, since they cannot be compared)."""
    if current.settings.parameters is not None and current.settings == want.settings():
        return current
    return backend.update_schedule(current.id, want.settings())


def update_schedule(backend: Backend, schedule_id: str, want: ScheduleInputs) -> ScheduleRecord:
    """Update recurrence, description, parameter values and status in place."""
    current = backend.get_schedule(schedule_id)
    if current is None:
        raise BackendError(f"schedule {schedule_id} no longer exists; run `pulumi refresh`")
    return converge_schedule(backend, current, want)


def delete_schedule(backend: Backend, schedule_id: str) -> None:
    """Disable the schedule (Azure ML v1 schedules cannot be deleted)."""
    current = backend.get_schedule(schedule_id)
    if current is not None and current.settings.status is Status.ACTIVE:
        backend.update_schedule(schedule_id, _disabled(current.settings))
