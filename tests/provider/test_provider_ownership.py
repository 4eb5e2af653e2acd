"""Two stacks on one workspace (one local store), each with its own provider host as two
`pulumi up`s would have: neither ever adopts, undoes or prunes what the other published, at the
same moment or one after the other; taking over another stack's endpoint needs
`adopt_existing`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest

from infra.provider.local_backend import LocalBackend
from infra.provider.port import Owner, Status
from tests.provider.conftest import LOCAL_CONFIG
from tests.provider.faults import PLAN_ENV, FaultPlan
from tests.provider.grpc_host import (
    ENDPOINT_TYPE,
    FAULTY_PROVIDERS,
    SCHEDULE_TYPE,
    ProviderHost,
    Stack,
)
from tests.provider.provider_fixtures import Project

TRIALS = 20


@dataclass
class Deployer:
    """One stack: its own provider host and engine state."""

    owner: Owner
    host: ProviderHost
    stack: Stack

    def endpoint_inputs(self, project: Project, name: str, **extra: object) -> dict[str, object]:
        return project.endpoint_inputs(name, owner=self.owner, **extra)


@pytest.fixture
def two_stacks(project: Project, plan: FaultPlan) -> Iterator[tuple[Deployer, Deployer]]:
    deployers = []
    try:
        for name in ("alpha", "beta"):
            host = ProviderHost(project.root, env={PLAN_ENV: str(plan.path)})
            host.configure(LOCAL_CONFIG)
            stack = Stack(host, stack=name, providers=FAULTY_PROVIDERS)
            deployers.append(Deployer(Owner("proj", name), host, stack))
        yield deployers[0], deployers[1]
    finally:
        for deployer in deployers:
            deployer.host.close()


def _failure(exc: BaseException) -> str:
    assert isinstance(exc, grpc.RpcError), exc
    return str(exc.details())  # type: ignore[attr-defined]


def _up_at_once(
    deployers: tuple[Deployer, ...], name: str, inputs: dict[str, dict[str, object]]
) -> dict[str, BaseException]:
    """Every deployer's `up` of the endpoint in its own thread; the errors, by stack."""
    errors: dict[str, BaseException] = {}

    def up(deployer: Deployer) -> None:
        try:
            deployer.stack.up(ENDPOINT_TYPE, name, inputs[deployer.owner.stack])
        except BaseException as exc:  # collected, checked in the main thread
            errors[deployer.owner.stack] = exc

    threads = [threading.Thread(target=up, args=(d,)) for d in deployers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_two_stacks_creating_one_endpoint_at_once_never_undo_each_other(
    project: Project,
    two_stacks: tuple[Deployer, Deployer],
    plan: FaultPlan,
    backend: LocalBackend,
) -> None:
    for trial in range(TRIALS):
        name = f"race{trial}"
        project.write_pipeline(name)
        inputs = {d.owner.stack: d.endpoint_inputs(project, name) for d in two_stacks}
        # Both have published and found the name free before either creates the endpoint.
        plan.meet("create_endpoint", parties=2)
        plan.reset_counts()
        errors = _up_at_once(two_stacks, name, inputs)
        plan.clear()
        assert plan.counts().writes["publish_pipeline"] == 2  # a real race: both published

        (loser,) = errors  # exactly one of the two creates fails: names are unique
        assert "already exists" in _failure(errors[loser])
        (winner,) = (d for d in two_stacks if d.owner.stack != loser)
        endpoint = backend.get_endpoint(name=name)
        # The winner's state says what the service says: its endpoint, active, its version
        assert endpoint is not None and endpoint.status is Status.ACTIVE, trial
        assert winner.stack.state[name].id == endpoint.id
        assert winner.stack.state[name].outputs["status"] == "Active"
        assert endpoint.owner == winner.owner
        assert endpoint.default.pipeline.status is Status.ACTIVE
        assert endpoint.default.pipeline.owner == winner.owner
        # The loser undid only what it published: nothing of its own is left enabled
        active = backend.find_published(name)
        assert [p.owner for p in active] == [winner.owner], trial
        assert name not in next(d for d in two_stacks if d.owner.stack == loser).stack.state


def test_a_second_stack_never_takes_over_an_endpoint_without_adopt_existing(
    project: Project,
    two_stacks: tuple[Deployer, Deployer],
    plan: FaultPlan,
    backend: LocalBackend,
) -> None:
    alpha, beta = two_stacks
    alpha.stack.up(ENDPOINT_TYPE, "demo", alpha.endpoint_inputs(project, "demo"))
    endpoint_id = alpha.stack.state["demo"].id

    # identical content on the same workspace: refused, and not a single write
    plan.reset_counts()
    with pytest.raises(grpc.RpcError) as raised:
        beta.stack.up(ENDPOINT_TYPE, "demo", beta.endpoint_inputs(project, "demo"))
    message = _failure(raised.value)
    assert "belongs to stack proj/alpha" in message and "adopt_existing" in message
    assert plan.counts().total_writes == 0
    assert "demo" not in beta.stack.state

    # beta's own endpoint elsewhere, then alpha re-runs: alpha's retention and clean-up never
    # disable what beta published
    project.write_pipeline("mine")
    beta.stack.up(ENDPOINT_TYPE, "mine", beta.endpoint_inputs(project, "mine"))
    project.write("pipeline_defs/demo/steps/prep/prep.py", "print('v2')\n")
    alpha.stack.up(ENDPOINT_TYPE, "demo", alpha.endpoint_inputs(project, "demo", retention=1))
    mine = backend.get_endpoint(name="mine")
    assert mine is not None and mine.default.pipeline.status is Status.ACTIVE

    # with adopt_existing the take-over is explicit; it publishes nothing new for this content
    plan.reset_counts()
    adopted = beta.endpoint_inputs(project, "demo", adopt_existing=True)
    assert beta.stack.up(ENDPOINT_TYPE, "demo", adopted).op == "create"
    assert beta.stack.state["demo"].id == endpoint_id
    assert "publish_pipeline" not in plan.counts().writes


def test_an_interrupted_create_is_adopted_only_by_its_own_stack(
    project: Project,
    two_stacks: tuple[Deployer, Deployer],
    plan: FaultPlan,
    backend: LocalBackend,
) -> None:
    alpha, beta = two_stacks
    # alpha's create fails after the endpoint was made, and its clean-up fails too: leftovers
    plan.arm("create_endpoint", 1, "after")
    plan.arm("*", 2, "before")
    with pytest.raises(grpc.RpcError):
        alpha.stack.up(ENDPOINT_TYPE, "demo", alpha.endpoint_inputs(project, "demo"))
    plan.clear()
    leftover = backend.get_endpoint(name="demo")
    assert leftover is not None and leftover.owner == alpha.owner

    # beta, same content, does not mistake alpha's leftover for its own
    with pytest.raises(grpc.RpcError, match="belongs to stack proj/alpha"):
        beta.stack.up(ENDPOINT_TYPE, "demo", beta.endpoint_inputs(project, "demo"))
    # alpha's retry adopts it: no second endpoint, no second publish
    plan.reset_counts()
    assert alpha.stack.up(ENDPOINT_TYPE, "demo", alpha.endpoint_inputs(project, "demo")).op == (
        "create"
    )
    assert alpha.stack.state["demo"].id == leftover.id
    assert plan.counts().writes == {}


def test_schedules_of_another_stack_on_an_adopted_endpoint_are_left_alone(
    project: Project,
    two_stacks: tuple[Deployer, Deployer],
    backend: LocalBackend,
) -> None:
    alpha, beta = two_stacks
    alpha.stack.up(ENDPOINT_TYPE, "demo", alpha.endpoint_inputs(project, "demo"))
    endpoint_id = alpha.stack.state["demo"].id
    alpha_schedule = project.schedule_inputs(endpoint_id, owner=alpha.owner)
    alpha.stack.up(SCHEDULE_TYPE, "nightly", alpha_schedule)
    beta.stack.up(ENDPOINT_TYPE, "demo", beta.endpoint_inputs(project, "demo", adopt_existing=True))

    # beta's schedule of the same name is its own: alpha's is neither adopted nor disabled
    beta.stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id, owner=beta.owner))
    found = {s.owner: s for s in backend.find_schedules(endpoint_id, "demo-nightly")}
    assert set(found) == {alpha.owner, beta.owner}
    assert all(s.settings.status is Status.ACTIVE for s in found.values())
    assert beta.stack.state["nightly"].id == found[beta.owner].id
    beta.stack.destroy("nightly")
    live = backend.get_schedule(found[alpha.owner].id)
    assert live is not None and live.settings.status is Status.ACTIVE
