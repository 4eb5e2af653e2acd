"""Interrupt create, update and delete at every backend write (before it applies, and after it
applied but the call failed), then run again as the next `pulumi up` would: it must converge with
no duplicate endpoint or schedule and no extra enabled version."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from infra.provider.local_backend import LocalBackend
from infra.provider.port import Status
from tests.provider.faults import FaultPlan, Timing
from tests.provider.grpc_host import ENDPOINT_TYPE, SCHEDULE_TYPE, Stack
from tests.provider.provider_fixtures import Project

TIMINGS: tuple[Timing, ...] = ("before", "after")


def interrupted(run: Callable[[], object]) -> bool:
    """Run one engine operation; True when an injected fault stopped it (any other error fails)."""
    try:
        run()
    except grpc.RpcError as exc:
        assert "injected fault" in str(exc.details()), exc.details()  # type: ignore[attr-defined]
        return True
    return False


def each_write(plan: FaultPlan, timing: Timing, attempt: Callable[[int], bool]) -> list[int]:
    """`attempt(k)` arms a fault on its k-th write and says whether it fired; k = 1, 2, ... until
    an attempt completes without the fault firing. Returns the k that were interrupted."""
    failed: list[int] = []
    for k in range(1, 12):
        plan.clear()
        if not attempt(k):
            return failed
        failed.append(k)
    raise AssertionError("the operation never completed")


def assert_converged(backend: LocalBackend, inputs: dict[str, Any]) -> None:
    """One active endpoint with this name, serving the wanted content, pruned to retention, and
    no enabled published pipeline of that name outside it."""
    endpoint = backend.get_endpoint(name=inputs["name"])
    assert endpoint is not None and endpoint.status is Status.ACTIVE
    assert endpoint.default.pipeline.version_tag == inputs["content_hash"]
    assert endpoint.default.pipeline.status is Status.ACTIVE
    enabled = [v for v in endpoint.versions if v.pipeline.status is Status.ACTIVE]
    assert len(enabled) <= inputs["version_retention"]
    attached = {v.pipeline.id for v in endpoint.versions}
    orphans = [p for p in backend.find_published(inputs["name"]) if p.id not in attached]
    assert orphans == [], "an interrupted run left an enabled published pipeline behind"


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("undo_fails", [False, True], ids=["undone", "undo-fails"])
def test_interrupted_endpoint_create_leaves_nothing_and_converges_on_the_next_run(
    project: Project,
    stack: Stack,
    plan: FaultPlan,
    backend: LocalBackend,
    timing: Timing,
    undo_fails: bool,
) -> None:
    def attempt(k: int) -> bool:
        name = f"c{k}{timing}{int(undo_fails)}"
        project.write_pipeline(name)
        inputs = project.endpoint_inputs(name)
        plan.arm("*", k, timing)
        if undo_fails:  # the clean-up after the failure fails too (its first write)
            plan.arm("*", k + 1, "before")
        fired = interrupted(lambda: stack.up(ENDPOINT_TYPE, name, inputs))
        plan.clear()
        if fired and not undo_fails:  # transactional: nothing enabled is left behind
            assert backend.get_endpoint(name=name) is None
            assert backend.find_published(name) == []
        if fired:  # nothing in the state: the next `pulumi up` creates again
            assert name not in stack.state
            assert stack.up(ENDPOINT_TYPE, name, inputs).op == "create"
        assert_converged(backend, inputs)
        endpoint = backend.get_endpoint(name=name)
        assert endpoint is not None and stack.state[name].id == endpoint.id
        return fired

    assert each_write(plan, timing, attempt) == [1, 2]  # publish, create endpoint


@pytest.mark.parametrize("timing", TIMINGS)
def test_interrupted_endpoint_update_converges_on_the_next_run(
    project: Project, stack: Stack, plan: FaultPlan, backend: LocalBackend, timing: Timing
) -> None:
    def attempt(k: int) -> bool:
        name = f"u{k}{timing}"
        project.write_pipeline(name)
        stack.up(ENDPOINT_TYPE, name, project.endpoint_inputs(name))
        project.write(f"pipeline_defs/{name}/steps/prep/prep.py", "print(2)\n")
        stack.up(ENDPOINT_TYPE, name, project.endpoint_inputs(name))
        project.write(f"pipeline_defs/{name}/steps/prep/prep.py", "print(3)\n")
        inputs = project.endpoint_inputs(name)
        plan.arm("*", k, timing)
        fired = interrupted(lambda: stack.up(ENDPOINT_TYPE, name, inputs))
        plan.clear()
        if fired:  # the engine kept the old state; the next `pulumi up` updates again
            assert stack.up(ENDPOINT_TYPE, name, inputs).op == "update"
        assert_converged(backend, inputs)
        endpoint = backend.get_endpoint(name=name)
        assert endpoint is not None and stack.state[name].id == endpoint.id
        assert stack.state[name].outputs["default_content_hash"] == inputs["content_hash"]
        assert len([v for v in endpoint.versions if v.pipeline.status is Status.ACTIVE]) == 2
        return fired

    # publish, add as default version, disable the version beyond retention
    assert each_write(plan, timing, attempt) == [1, 2, 3]


@pytest.mark.parametrize("timing", TIMINGS)
@pytest.mark.parametrize("enabled", [False, True], ids=["paused", "active"])
def test_interrupted_schedule_create_leaves_nothing_running_and_one_schedule(
    project: Project,
    stack: Stack,
    plan: FaultPlan,
    backend: LocalBackend,
    timing: Timing,
    enabled: bool,
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    endpoint_id = stack.state["demo"].id
    wanted = Status.ACTIVE if enabled else Status.DISABLED

    def attempt(k: int) -> bool:
        inputs = {**project.schedule_inputs(endpoint_id, enabled=enabled), "name": f"demo-s{k}"}
        plan.arm("*", k, timing)
        fired = interrupted(lambda: stack.up(SCHEDULE_TYPE, inputs["name"], inputs))
        plan.clear()
        if fired:  # whatever the failed create made is disabled: nothing runs
            leftovers = backend.find_schedules(endpoint_id, inputs["name"])
            assert all(s.settings.status is Status.DISABLED for s in leftovers)
            assert stack.up(SCHEDULE_TYPE, inputs["name"], inputs).op == "create"
        found = backend.find_schedules(endpoint_id, inputs["name"])
        assert [s.settings.status for s in found] == [wanted]  # one schedule, adopted on retry
        assert stack.state[inputs["name"]].id == found[0].id
        return fired

    assert each_write(plan, timing, attempt) == [1]  # created with its status in one call


@pytest.mark.parametrize("timing", TIMINGS)
def test_interrupted_schedule_update_and_delete_converge(
    project: Project, stack: Stack, plan: FaultPlan, backend: LocalBackend, timing: Timing
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    endpoint_id = stack.state["demo"].id
    stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
    schedule_id = stack.state["nightly"].id

    paused = project.schedule_inputs(endpoint_id, enabled=False)
    plan.arm("update_schedule", 1, timing)
    assert interrupted(lambda: stack.up(SCHEDULE_TYPE, "nightly", paused))
    plan.reset_counts()
    assert stack.up(SCHEDULE_TYPE, "nightly", paused).op == "update"
    # when the failed call had applied, the retry reads the live schedule and writes nothing
    assert plan.counts().total_writes == (0 if timing == "after" else 1)
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.status is Status.DISABLED

    stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
    saved = stack.state["nightly"]
    plan.arm("update_schedule", 1, timing)
    assert interrupted(lambda: stack.destroy("nightly"))
    stack.state["nightly"] = saved  # the engine keeps a resource whose delete failed
    stack.destroy("nightly")
    live = backend.get_schedule(schedule_id)
    assert live is not None and live.settings.status is Status.DISABLED
    assert len(backend.find_schedules(endpoint_id, saved.outputs["name"])) == 1


@pytest.mark.parametrize("timing", TIMINGS)
def test_interrupted_endpoint_delete_converges_on_the_next_run(
    project: Project, stack: Stack, plan: FaultPlan, backend: LocalBackend, timing: Timing
) -> None:
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    project.write("pipeline_defs/demo/steps/prep/prep.py", "print(2)\n")
    stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    endpoint_id = stack.state["demo"].id
    saved = stack.state["demo"]

    def attempt(k: int) -> bool:
        plan.arm("*", k, timing)
        stack.state["demo"] = saved  # a failed delete leaves the resource in the state
        fired = interrupted(lambda: stack.destroy("demo"))
        plan.clear()
        if fired:
            stack.state["demo"] = saved
            stack.destroy("demo")
        endpoint = backend.get_endpoint(endpoint_id=endpoint_id)
        assert endpoint is not None and endpoint.status is Status.DISABLED
        assert all(v.pipeline.status is Status.DISABLED for v in endpoint.versions)
        assert backend.find_published("demo") == []
        return fired

    # the first k of each attempt hits an already deleted endpoint after k=1 converged, so
    # count only that the first attempt was interrupted and every retry converged
    assert each_write(plan, timing, attempt)[:1] == [1]
