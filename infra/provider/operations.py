"""What create/update/delete do to endpoints and schedules, written against the backend port.

Every procedure is *convergent*: it reads what exists, then makes only the writes still needed.
A run interrupted at any write (publish, add/set default, disable, schedule update) leaves a state
from which the next run finishes the job: it finds the published pipeline by name, content hash
and owner instead of publishing again, finds the endpoint or schedule an interrupted create made
instead of creating a duplicate, and disables whatever is beyond the retention count.

Ownership: everything the provider makes records the stack that made it (see
:class:`infra.provider.port.Owner`). Only objects of this stack are ever reused, adopted, pruned
or undone; another stack's endpoint of the same name is taken over only with `adopt_existing`.

Create is also transactional in the Pulumi sense: when it fails, it undoes the objects *this
call* made, identified by id (the published pipeline it published, the endpoint whose version 0
is that pipeline, the schedule that was not there before) and nothing else: whatever else holds
the name may be another stack's or a concurrent run's.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.provider.port import (
    Backend,
    BackendError,
    EndpointRecord,
    EndpointVersion,
    Owner,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
)
from infra.provider.props import EndpointInputs, ScheduleInputs

log = logging.getLogger(__name__)

BuildLoader = Callable[[], PipelineBuild]


@dataclass
class Made:
    """Ids of the objects one create call made (what its clean-up may undo, and nothing else)."""

    pipelines: list[str] = field(default_factory=list)
    endpoint: str | None = None


def _ours(owner: Owner | None, want: Owner | None) -> bool:
    """Whether an object's recorded owner is this stack (an unowned object is nobody's)."""
    return owner is not None and owner == want


def _publish_or_reuse(
    backend: Backend, want: EndpointInputs, load: BuildLoader, made: Made | None = None
) -> PublishedPipelineRecord:
    """An active published pipeline of this name, content and owner: reused if a failed run of
    this stack left one; otherwise a new publish (recorded in `made`)."""
    owner = want.owner_record()
    found = backend.find_published(want.name)
    for published in reversed(found):
        if published.version_tag == want.version_key() and _ours(published.owner, owner):
            return published
    try:
        published = backend.publish_pipeline(load())
    except Exception:
        if made is not None:  # the publish may have applied with its answer lost: find it
            _find_made_pipelines(backend, want, {p.id for p in found}, made)
        raise
    if made is not None:
        made.pipelines.append(published.id)
    return published


def _find_made_pipelines(
    backend: Backend, want: EndpointInputs, before: set[str], made: Made
) -> None:
    """Published pipelines of this name, content and owner that were not there before the
    failed publish call: that call made them."""
    try:
        for published in backend.find_published(want.name):
            if (
                published.id not in before
                and published.version_tag == want.version_key()
                and _ours(published.owner, want.owner_record())
            ):
                made.pipelines.append(published.id)
    except Exception as exc:
        log.warning("could not look for the pipeline a failed publish made: %s", exc)


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


def _disable_strays(backend: Backend, endpoint: EndpointRecord, owner: Owner | None) -> None:
    """Disable published pipelines of this name that this stack published and no version of the
    endpoint refers to (left by an interrupted run); other stacks' are not ours to touch."""
    attached = {v.pipeline.id for v in endpoint.versions}
    for published in backend.find_published(endpoint.name):
        if published.id not in attached and _ours(published.owner, owner):
            backend.disable_pipeline(published.id)


def _prune(backend: Backend, endpoint: EndpointRecord, retention: int, owner: Owner | None) -> None:
    """Disable enabled versions beyond retention, and this stack's stray published pipelines."""
    keep = versions_to_keep(endpoint, retention)
    for item in endpoint.versions:
        if item.pipeline.status is Status.ACTIVE and item.version not in keep:
            backend.disable_pipeline(item.pipeline.id)
    _disable_strays(backend, endpoint, owner)


def converge_endpoint(
    backend: Backend,
    endpoint: EndpointRecord,
    want: EndpointInputs,
    load: BuildLoader,
    made: Made | None = None,
) -> EndpointRecord:
    """Make `endpoint` active, serving `want.content_hash` by default, pruned to retention."""
    if endpoint.status is not Status.ACTIVE:
        endpoint = backend.reactivate_endpoint(endpoint.id, want.name)
    match = _latest_matching(endpoint, want.version_key())
    if match is None:
        published = _publish_or_reuse(backend, want, load, made)
        endpoint = backend.add_default_version(endpoint.id, published.id)
    elif match.version != endpoint.default_version:
        endpoint = backend.set_default_version(endpoint.id, match.version)
    _prune(backend, endpoint, want.version_retention, want.owner_record())
    return _require(backend, endpoint.id)


def _require(backend: Backend, endpoint_id: str) -> EndpointRecord:
    found = backend.get_endpoint(endpoint_id=endpoint_id)
    if found is None:
        raise BackendError(
            f"pipeline endpoint {endpoint_id} no longer exists in {backend}; run `pulumi "
            "refresh` to forget it"
        )
    return found


def create_endpoint(backend: Backend, want: EndpointInputs, load: BuildLoader) -> EndpointRecord:
    """Publish and create the endpoint, or adopt the one an interrupted create of this stack
    left (or, with `adopt_existing`, any endpoint of this name).

    When this call fails after writing, it undoes what it made (best effort: disables the
    pipeline it published, archives the endpoint it created) so nothing is left enabled; if the
    undo fails too, the next run adopts the leftovers (they carry this stack's owner).
    """
    owner = want.owner_record()
    existing = backend.get_endpoint(name=want.name)
    if existing is not None:
        if not (_left_by_us(existing, want) or want.adopt_existing):
            raise BackendError(
                f"a pipeline endpoint named {want.name!r} already exists in workspace "
                f"{want.workspace_name!r} and {_whose(existing, owner)}; set adopt_existing to "
                "take it over, or choose another name"
            )
        return converge_endpoint(backend, existing, want, load)
    made = Made()
    try:
        published = _publish_or_reuse(backend, want, load, made)
        try:
            endpoint = backend.create_endpoint(
                want.name, want.description, published.id, _owner_or_fail(owner)
            )
        except Exception:
            _find_made_endpoint(backend, want, made)
            raise
        made.endpoint = endpoint.id
        return converge_endpoint(backend, endpoint, want, load, made)
    except Exception:
        _undo_create_endpoint(backend, want, made)
        raise


def _left_by_us(existing: EndpointRecord, want: EndpointInputs) -> bool:
    """An endpoint an interrupted create of this very resource left: owned by this stack and
    serving the content being created (another resource of the stack would serve other
    content)."""
    return (
        _ours(existing.owner, want.owner_record())
        and existing.default.pipeline.version_tag == want.version_key()
    )


def _whose(existing: EndpointRecord, owner: Owner | None) -> str:
    if existing.owner is None:
        return "was not made by amlpipe (no owner recorded on it)"
    if existing.owner == owner:
        return "was made by this stack for other content (another resource of the stack?)"
    return f"belongs to stack {existing.owner.label()}, not to this one"


def _owner_or_fail(owner: Owner | None) -> Owner:
    if owner is None:  # check() refuses such inputs; a create without one is a bug
        raise BackendError("the resource inputs name no owner (project and stack)")
    return owner


def _find_made_endpoint(backend: Backend, want: EndpointInputs, made: Made) -> None:
    """After a failed `create_endpoint` call, find the endpoint it may have made anyway (the
    write applied, the answer was lost): the one of this name, owned by this stack, whose
    version 0 is the pipeline this very call published. Anything else is not ours to undo."""
    try:
        found = backend.get_endpoint(name=want.name)
    except Exception as exc:
        log.warning("could not look for the endpoint a failed create made: %s", exc)
        return
    if (
        found is not None
        and _ours(found.owner, want.owner_record())
        and any(v.version == "0" and v.pipeline.id in made.pipelines for v in found.versions)
    ):
        made.endpoint = found.id


def _undo_create_endpoint(backend: Backend, want: EndpointInputs, made: Made) -> None:
    try:
        if made.endpoint is not None:
            endpoint = backend.get_endpoint(endpoint_id=made.endpoint)
            if endpoint is not None and endpoint.status is Status.ACTIVE:
                backend.archive_endpoint(endpoint.id)
        for pipeline_id in made.pipelines:
            backend.disable_pipeline(pipeline_id)
    except Exception as exc:
        log.warning("could not undo the failed create of endpoint %s: %s", want.name, exc)


def update_endpoint(
    backend: Backend, endpoint_id: str, want: EndpointInputs, load: BuildLoader
) -> EndpointRecord:
    """Bring an existing endpoint to `want` (publishes only when no version has that content)."""
    return converge_endpoint(backend, _require(backend, endpoint_id), want, load)


def delete_endpoint(backend: Backend, endpoint_id: str, owner: Owner | None) -> None:
    """Disable every version and archive the endpoint (Azure ML v1 deletes neither), and this
    stack's stray published pipelines of its name."""
    endpoint = backend.get_endpoint(endpoint_id=endpoint_id)
    if endpoint is None:
        return
    for item in endpoint.versions:
        if item.pipeline.status is Status.ACTIVE:
            backend.disable_pipeline(item.pipeline.id)
    if endpoint.status is Status.ACTIVE:
        _disable_strays(backend, endpoint, owner)
        backend.archive_endpoint(endpoint.id)


# -- schedules ------------------------------------------------------------------------------------


def create_schedule(backend: Backend, want: ScheduleInputs) -> ScheduleRecord:
    """Create the schedule, or adopt the one an interrupted create of this stack left (same
    name, target and owner); schedules of other stacks are left alone."""
    owner = want.owner_record()
    found = backend.find_schedules(want.endpoint_id, want.name)
    existing = [s for s in found if _ours(s.owner, owner)]
    if existing:
        adopted, *others = sorted(existing, key=lambda s: s.settings.status is Status.ACTIVE)[::-1]
        for extra in others:
            if extra.settings.status is Status.ACTIVE:
                backend.update_schedule(extra.id, _disabled(extra.settings))
        return converge_schedule(backend, adopted, want)
    before = {s.id for s in found}
    try:
        return backend.create_schedule(
            want.name, want.endpoint_id, want.experiment, want.settings(), _owner_or_fail(owner)
        )
    except Exception:
        _undo_create_schedule(backend, want, before)
        raise


def _disabled(settings: ScheduleSettings) -> ScheduleSettings:
    return ScheduleSettings(
        settings.recurrence, settings.description, settings.parameters, Status.DISABLED
    )


def _undo_create_schedule(backend: Backend, want: ScheduleInputs, before: set[str]) -> None:
    # Azure ML cannot delete a schedule: disable the one the failed create made (a schedule of
    # this stack that was not there before the call), so nothing runs; the retry adopts it.
    try:
        for found in backend.find_schedules(want.endpoint_id, want.name):
            made_here = found.id not in before and _ours(found.owner, want.owner_record())
            if made_here and found.settings.status is Status.ACTIVE:
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
