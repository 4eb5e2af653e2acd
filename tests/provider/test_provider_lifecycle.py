"""Full lifecycle of an endpoint and its schedule through the real provider host (local backend)."""

from __future__ import annotations

import pytest
from pulumi.runtime.proto import provider_pb2

from infra.provider.local_backend import LocalBackend
from infra.provider.port import ScheduleSettings, Status
from tests.provider.faults import FaultPlan
from tests.provider.grpc_host import ENDPOINT_TYPE, SCHEDULE_TYPE, Stack
from tests.provider.provider_fixtures import IMAGE_V2, Project

NEW_PREP = "print('prep, better')\n"


def _changed_keys(old: dict[str, object], new: dict[str, object]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


def test_lifecycle_create_noop_update_replace_drift_delete(
    project: Project, stack: Stack, plan: FaultPlan, backend: LocalBackend
) -> None:
    # create
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "create"
    endpoint_id = stack.state["demo"].id
    schedule_in = project.schedule_inputs(endpoint_id)
    assert stack.up(SCHEDULE_TYPE, "nightly", schedule_in).op == "create"
    out = stack.state["demo"].outputs
    assert out["default_version"] == "0" and out["status"] == "Active"
    assert out["rest_url"].endswith(f"/PipelineEndpointSubmit/Id/{endpoint_id}")
    assert stack.state["nightly"].outputs["enabled"] is True

    # no-op: no changes and zero backend calls
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "same"
    assert stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id)).op == "same"
    assert plan.counts().total_writes == 0

    # one step's script changed: the inputs say which step, a new default version is published
    old_inputs = project.endpoint_inputs()
    project.write("pipeline_defs/demo/steps/prep/prep.py", NEW_PREP)
    new_inputs = project.endpoint_inputs()
    assert _changed_keys(old_inputs, new_inputs) == {"steps", "content_hash"}
    assert _changed_keys(old_inputs["steps"], new_inputs["steps"]) == {"prep"}  # type: ignore[arg-type]
    preview = stack.preview_diff(ENDPOINT_TYPE, "demo", new_inputs)
    assert preview.changes == provider_pb2.DiffResponse.DIFF_SOME and not preview.replaces
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", new_inputs).op == "update"
    assert plan.counts().writes == {"publish_pipeline": 1, "add_default_version": 1}
    out = stack.state["demo"].outputs
    assert stack.state["demo"].id == endpoint_id
    assert (out["default_version"], out["enabled_versions"]) == ("1", ["0", "1"])

    # image changed: another version; retention 2 keeps the previous one, disables the oldest
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs(image=IMAGE_V2)).op == "update"
    out = stack.state["demo"].outputs
    assert (out["default_version"], out["enabled_versions"]) == ("2", ["1", "2"])
    assert backend.published_images(out["published_pipeline_id"]) == {"training": IMAGE_V2}
    assert stack.up(SCHEDULE_TYPE, "nightly", schedule_in).op == "same"

    # recurrence changed: the schedule is updated in place, the endpoint is untouched
    yaml_file = project.root / "pipeline_defs/demo/pipeline.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("'30 2 * * *'", "'0 7 * * 1'"))
    endpoint_in = project.endpoint_inputs(image=IMAGE_V2)
    assert stack.up(ENDPOINT_TYPE, "demo", endpoint_in).op == "same"
    schedule_id = stack.state["nightly"].id
    assert stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id)).op == "update"
    assert stack.state["nightly"].id == schedule_id
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.recurrence.week_days == ["Monday"]
    assert live.settings.recurrence.hours == [7]

    # endpoint renamed: replaced (create before delete); the schedule follows (replaced too)
    renamed = {**endpoint_in, "name": "demo-renamed"}
    step = stack.up(ENDPOINT_TYPE, "demo", renamed)
    assert (step.op, step.replaces) == ("replace", ["name"])
    new_endpoint_id = stack.state["demo"].id
    assert new_endpoint_id != endpoint_id
    old_endpoint = backend.get_endpoint(endpoint_id=endpoint_id)
    assert old_endpoint is not None and old_endpoint.status is Status.DISABLED
    assert old_endpoint.name != "demo"  # archived: renamed, the name is free again
    assert all(v.pipeline.status is Status.DISABLED for v in old_endpoint.versions)
    step = stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(new_endpoint_id))
    assert (step.op, step.replaces) == ("replace", ["endpoint_id"])
    old_schedule = backend.get_schedule(schedule_id)
    assert old_schedule is not None and old_schedule.settings.status is Status.DISABLED

    # out-of-band: schedule disabled and endpoint default moved; refresh sees both, up repairs
    schedule_id = stack.state["nightly"].id
    live = backend.get_schedule(schedule_id)
    assert live is not None
    backend.update_schedule(
        schedule_id,
        ScheduleSettings(live.settings.recurrence, live.settings.description, {}, Status.DISABLED),
    )
    refreshed = stack.refresh("nightly")
    assert refreshed is not None and refreshed.outputs["enabled"] is False
    assert stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(new_endpoint_id)).op == (
        "update"
    )
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.status is Status.ACTIVE
    assert live.settings.parameters == {"epochs": 5}

    # archived out of band: refresh reports it, up reactivates the same endpoint (same URL)
    backend.archive_endpoint(new_endpoint_id)
    refreshed = stack.refresh("demo")
    assert refreshed is not None and refreshed.outputs["status"] == "Disabled"
    assert stack.up(ENDPOINT_TYPE, "demo", renamed).op == "update"
    live_endpoint = backend.get_endpoint(endpoint_id=new_endpoint_id)
    assert live_endpoint is not None
    assert (live_endpoint.name, live_endpoint.status) == ("demo-renamed", Status.ACTIVE)

    # delete: schedule disabled, endpoint archived, every version disabled
    stack.destroy("nightly")
    stack.destroy("demo")
    gone_schedule = backend.get_schedule(schedule_id)
    assert gone_schedule is not None and gone_schedule.settings.status is Status.DISABLED
    gone = backend.get_endpoint(endpoint_id=new_endpoint_id)
    assert gone is not None and gone.status is Status.DISABLED
    assert all(v.pipeline.status is Status.DISABLED for v in gone.versions)
    assert backend.find_published("demo") == [] and backend.find_published("demo-renamed") == []


def test_default_version_moved_out_of_band_is_drift_that_up_repairs(
    project: Project, stack: Stack, backend: LocalBackend
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    project.write("pipeline_defs/demo/steps/prep/prep.py", NEW_PREP)
    inputs = project.endpoint_inputs()
    stack.up(ENDPOINT_TYPE, "demo", inputs)
    endpoint_id = stack.state["demo"].id
    backend.set_default_version(endpoint_id, "0")  # someone rolled back in the studio

    refreshed = stack.refresh("demo")
    assert refreshed is not None and refreshed.outputs["default_version"] == "0"
    assert refreshed.outputs["default_content_hash"] != inputs["content_hash"]
    # No new publish: the version with the wanted content still exists, it is made default again.
    assert stack.up(ENDPOINT_TYPE, "demo", inputs).op == "update"
    assert stack.state["demo"].outputs["default_version"] == "1"
    endpoint = backend.get_endpoint(endpoint_id=endpoint_id)
    assert endpoint is not None and len(endpoint.versions) == 2


def test_paused_schedule_is_created_disabled_and_enabling_it_is_an_update(
    project: Project, stack: Stack, backend: LocalBackend
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    endpoint_id = stack.state["demo"].id
    stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id, enabled=False))
    schedule_id = stack.state["nightly"].id
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.status is Status.DISABLED

    assert stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id)).op == "update"
    assert stack.state["nightly"].id == schedule_id
    assert stack.state["nightly"].outputs["enabled"] is True


def test_endpoint_name_taken_by_someone_else_fails_unless_adopted(
    project: Project, stack: Stack, backend: LocalBackend
) -> None:
    stack.up(ENDPOINT_TYPE, "other", project.endpoint_inputs())
    project.write("pipeline_defs/demo/steps/prep/prep.py", NEW_PREP)
    inputs = project.endpoint_inputs()  # same name "demo", different content: not our leftover
    try:
        stack.up(ENDPOINT_TYPE, "demo", inputs)
    except Exception as exc:
        assert "already exists" in str(exc) and "adopt_existing" in str(exc)
    else:
        raise AssertionError("creating over a foreign endpoint must fail")
    assert stack.up(ENDPOINT_TYPE, "demo", {**inputs, "adopt_existing": True}).op == "create"
    assert stack.state["demo"].id == stack.state["other"].id
    assert stack.state["demo"].outputs["default_version"] == "1"


def test_preview_with_unknown_inputs_reports_changes_without_calling_the_backend(
    project: Project, stack: Stack, plan: FaultPlan
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    unknown = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
    plan.reset_counts()
    diff = stack.preview_diff(
        ENDPOINT_TYPE, "demo", {**project.endpoint_inputs(), "content_hash": unknown}
    )
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and not diff.replaces
    diff = stack.preview_diff(
        ENDPOINT_TYPE, "demo", {**project.endpoint_inputs(), "workspace_name": unknown}
    )
    assert list(diff.replaces) == ["workspace_name"]
    counts = plan.counts()
    assert counts.total_writes == 0 and counts.total_reads == 0


def test_state_from_an_older_provider_is_rewritten_not_a_crash(
    project: Project, stack: Stack, plan: FaultPlan
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    legacy = dict(stack.state["demo"].outputs)
    del legacy["default_content_hash"]  # a key this version needs, absent in older states
    stack.state["demo"].outputs = legacy
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "update"
    assert plan.counts().total_writes == 0  # nothing to change on the service
    assert "default_content_hash" in stack.state["demo"].outputs


def test_registry_identity_change_publishes_a_new_version_once(
    project: Project, stack: Stack, plan: FaultPlan
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    identity = {"cpu-cluster": {"resource_id": "/subscriptions/s/id-cpu", "client_id": "c1"}}
    inputs = project.endpoint_inputs(registry_identities=identity)
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", inputs).op == "update"
    assert plan.counts().writes.get("publish_pipeline") == 1
    out = stack.state["demo"].outputs
    assert out["default_version"] == "1" and out["content_hash"] == inputs["content_hash"]
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", inputs).op == "same"
    assert plan.counts().total_writes == 0


def test_refresh_of_an_endpoint_the_service_does_not_know_drops_it(
    project: Project, stack: Stack
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    stack.state["demo"].id = "00000000-dead-beef-0000-000000000000"  # e.g. state of another ws
    assert stack.refresh("demo") is None
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "create"


def test_check_reports_invalid_inputs_by_property(project: Project, stack: Stack) -> None:
    from tests.provider import grpc_host

    bad = {**project.endpoint_inputs(), "version_retention": 0}
    stack.types["demo"] = ENDPOINT_TYPE
    news = {**bad, "__provider": grpc_host.PROVIDERS[ENDPOINT_TYPE]}
    try:
        stack.host.check(stack.urn("demo"), {}, news)
    except ValueError as exc:
        (failure,) = exc.args[0]
        assert failure[0] == "version_retention" and "greater than or equal to 1" in failure[1]
    else:
        raise AssertionError("check accepted version_retention 0")


def test_retention_keeps_the_default_plus_the_newest_previous_versions(
    project: Project, stack: Stack, plan: FaultPlan
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs(retention=3))
    for n in range(1, 5):
        project.write("pipeline_defs/demo/steps/prep/prep.py", f"print({n})\n")
        stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs(retention=3))
    out = stack.state["demo"].outputs
    assert (out["default_version"], out["enabled_versions"]) == ("4", ["2", "3", "4"])

    # lowering the retention is an update that only disables; no new version is published
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs(retention=1)).op == "update"
    assert plan.counts().writes == {"disable_pipeline": 2}
    assert stack.state["demo"].outputs["enabled_versions"] == ["4"]


def test_recurrence_changed_out_of_band_is_seen_by_refresh_and_restored(
    project: Project, stack: Stack, backend: LocalBackend
) -> None:
    from infra.definitions.model import Frequency, Recurrence

    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    wanted = project.schedule_inputs(stack.state["demo"].id)
    stack.up(SCHEDULE_TYPE, "nightly", wanted)
    schedule_id = stack.state["nightly"].id
    live = backend.get_schedule(schedule_id)
    assert live is not None
    hourly = Recurrence(frequency=Frequency.HOUR, interval=4, time_zone="UTC")
    backend.update_schedule(
        schedule_id,
        ScheduleSettings(hourly, live.settings.description, live.settings.parameters),
    )

    refreshed = stack.refresh("nightly")
    assert refreshed is not None
    assert refreshed.outputs["recurrence_text"] == "every 4 Hour UTC"
    assert stack.up(SCHEDULE_TYPE, "nightly", wanted).op == "update"
    restored = backend.get_schedule(schedule_id)
    assert restored is not None and restored.settings.recurrence.hours == [2]
    assert stack.state["nightly"].outputs["recurrence_text"] == "every 1 Day at 02:30 UTC"


def test_image_change_reads_as_an_image_change(project: Project) -> None:
    old, new = project.endpoint_inputs(), project.endpoint_inputs(image=IMAGE_V2)
    assert _changed_keys(old, new) == {"images", "content_hash"}
    assert new["images"] == {"training": IMAGE_V2}


def test_changing_only_the_experiment_publishes_nothing_and_the_schedule_says_what_to_do(
    project: Project, stack: Stack, plan: FaultPlan, backend: LocalBackend
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    endpoint_id = stack.state["demo"].id
    stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
    schedule_id = stack.state["nightly"].id
    yaml_file = project.root / "pipeline_defs/demo/pipeline.yaml"
    yaml_file.write_text(yaml_file.read_text().replace("experiment: demo-exp", "experiment: other"))

    # A published pipeline has no experiment: the endpoint's inputs do not change at all
    plan.reset_counts()
    assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "same"
    assert plan.counts().total_writes == 0
    # Scheduled runs are filed under it and Azure ML cannot change it on a schedule: refused
    # already at preview (Check, with the key named), nothing written, the schedule left running
    with pytest.raises(ValueError) as refused:
        stack.preview_diff(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
    ((key, reason),) = refused.value.args[0]
    assert key == "experiment" and "rename the schedule" in reason
    assert "'demo-exp' to 'other'" in reason
    with pytest.raises(ValueError, match="rename the schedule"):
        stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
    assert plan.counts().total_writes == 0
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.status is Status.ACTIVE
    assert live.experiment == "demo-exp"
