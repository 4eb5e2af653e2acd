"""The cut-over v1 -> v2 -> back through the real program and the real provider host, watched write
by write on both backends.

What is real: the program, run under the recording mocks for each stack config of the cut-over (in a
copy of the project); the order of every operation, taken from the dependency graph that run
registers (`dependsOn` and parents), never written by hand, and tried under two tie-breaks among
ready resources (pauses as early as the graph allows, and as late); the dynamic resources through
the provider host (a fresh host process per `up`, as the CLI starts one, unpickling the providers
the program registered): v1 `PipelineEndpoint`/`PipelineSchedule` on the v1 local backend (its
SQLite store, read by the test), v2 `PipelineComponentV2`/`DefaultDeploymentV2` with azure-ai-ml's
operations against the loopback fake ARM service.

What stands in: azure-native (no provider binary offline). Its workspace children
(EnvironmentVersion, BatchEndpoint, Schedule; deployments are the dynamic BatchDeploymentV2) are
written by the engine stand-in as ARM PUT (create/update: the registered inputs' location, tags and
properties) and DELETE (unless retained) on the same fake service, so the v2 schedules' state is
what those writes leave there (`properties.isEnabled`). Everything else azure-native or docker-build
owns (resource group, workspace, compute, image, ...) is state only. See program_engine.py.

What is checked, after every write either backend applied (v2: each request the fake ARM service
applied; v1: each provider operation, one backend write per schedule): every schedule a definition
enables is running under at least one API at every moment from the first deploy on (no gap); a
schedule running under both APIs at once only inside a hand-over that the same `up` opens (the new
API's schedule becomes active) and closes (the old one is paused); at the end of each `up`, exactly
one API runs it. Two APIs on two services cannot switch atomically: "never both" at every instant
would force a gap, so the graph orders create-then-pause and the overlap is bounded to the writes
between the two inside one `up`, never across an `up` boundary."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from infra.components.pipelines import schedule_name
from infra.definitions.loader import load_definitions
from infra.provider.local_backend import LocalBackend, LocalStore
from infra.provider.port import Status, WorkspaceRef
from tests.azureml_v2.host_fixtures import loopback, project_copy, start_host
from tests.azureml_v2.loopback import LoopbackArm
from tests.azureml_v2.program_engine import Engine, Op, ProgramRun, run_program
from tests.azureml_v2.v2_fixtures import REPO_ROOT
from tests.launch.pulumi_cli import this_interpreter_is_a_venv
from tests.program.mock_program import Registration
from tests.program.pulumi_config import stack_config

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").is_file() or not this_interpreter_is_a_venv(),
    reason="the provider host is started from the project's .venv (make venv), as the CLI does",
)

ML = "azure-native:machinelearningservices:"
V1_ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
V1_SCHEDULE = "pulumi-python:dynamic/azureml:PipelineSchedule"
V2_SCHEDULE = ML + "Schedule"
STORE = ".amlpipe/cutover.sqlite"
STACK = "cutover"
STEPS = [
    ("v1", "config: {}\n"),
    (
        "v2 (retiring v1)",
        "config:\n  azureml-pipelines:api: v2\n  azureml-pipelines:apiPrevious: v1\n",
    ),
    ("v2", "config:\n  azureml-pipelines:api: v2\n"),
    (
        "v1 (retiring v2)",
        "config:\n  azureml-pipelines:api: v1\n  azureml-pipelines:apiPrevious: v2\n",
    ),
    ("v1 again", "config: {}\n"),
]


def _pauses(reg: Registration) -> bool:
    """Whether this registration pauses a schedule (the retiring API's side of a cut-over)."""
    if reg.type == V1_SCHEDULE:
        return reg.inputs["enabled"] is False
    if reg.type == V2_SCHEDULE:
        return reg.inputs["properties"]["isEnabled"] is False
    return False


PAUSE_EARLY: Callable[[Registration], int] = lambda reg: 0 if _pauses(reg) else 1  # noqa: E731
PAUSE_LATE: Callable[[Registration], int] = lambda reg: 1 if _pauses(reg) else 0  # noqa: E731


@dataclass
class Moment:
    """Which APIs run each schedule right after one write."""

    step: str
    write: str
    v1: frozenset[str]
    v2: frozenset[str]
    v1_endpoints: frozenset[str] = frozenset()
    """v1 endpoints in service (Active), by name."""


@dataclass
class Watch:
    """Observes both backends after every write."""

    project: Path
    served: LoopbackArm
    engine: Engine | None = None
    step: str = ""
    v1_ids: dict[str, WorkspaceRef] = field(default_factory=dict)
    v1_endpoint_ids: dict[str, WorkspaceRef] = field(default_factory=dict)
    moments: list[Moment] = field(default_factory=list)

    def v1_running(self) -> frozenset[str]:
        running = set()
        for schedule_id, workspace in self.v1_ids.items():
            backend = LocalBackend(LocalStore(self.project / STORE), workspace)
            record = backend.get_schedule(schedule_id)
            if record is not None and record.settings.status is Status.ACTIVE:
                running.add(record.name)
        return frozenset(running)

    def v1_endpoints(self) -> frozenset[str]:
        active = set()
        for endpoint_id, workspace in self.v1_endpoint_ids.items():
            backend = LocalBackend(LocalStore(self.project / STORE), workspace)
            record = backend.get_endpoint(endpoint_id=endpoint_id)
            if record is not None and record.status is Status.ACTIVE:
                active.add(record.name)
        return frozenset(active)

    def v2_running(self) -> frozenset[str]:
        return frozenset(
            path.split("/")[2]
            for path, body in list(self.served.arm.objects.items())
            if path.startswith("/schedules/") and body["properties"].get("isEnabled") is True
        )

    def observe(self, write: str) -> None:
        assert self.engine is not None
        for res in list(self.engine.state.values()):
            ids = {V1_SCHEDULE: self.v1_ids, V1_ENDPOINT: self.v1_endpoint_ids}.get(
                res.registration.type
            )
            if ids is not None:
                inputs = res.inputs
                ids[res.id] = WorkspaceRef(
                    inputs["subscription_id"], inputs["resource_group"], inputs["workspace_name"]
                )
        self.moments.append(
            Moment(self.step, write, self.v1_running(), self.v2_running(), self.v1_endpoints())
        )

    def after_op(self, op: Op) -> None:
        if op.urn and "dynamic/azureml:Pipeline" in op.urn:
            self.observe(f"v1 {op.op} {op.urn.rsplit('::', 1)[-1]}")

    def after_arm_write(self, method: str, path: str) -> None:
        self.observe(f"v2 {method} {path}")


def _wanted() -> set[str]:
    loaded = load_definitions([REPO_ROOT / "pipeline_defs"], REPO_ROOT).raise_if_invalid()
    return {schedule_name(d.spec, s) for d in loaded for s in d.spec.schedules if s.enabled}


def _deploy_cut_over(
    tmp_path: Path,
    priority: Callable[[Registration], int],
    transform: Callable[[str, ProgramRun], ProgramRun] | None = None,
    steps: list[tuple[str, str]] = STEPS,
) -> tuple[Watch, dict[str, ProgramRun], LoopbackArm]:
    project = project_copy(tmp_path)
    runs = {label: run_program(project, STACK, text) for label, text in steps}
    if transform is not None:
        runs = {label: transform(label, run) for label, run in runs.items()}
    with loopback(tmp_path) as served:
        watch = Watch(project, served)
        served.observers.append(watch.after_arm_write)
        engine: Engine | None = None
        for label, text in steps:
            (project / f"Pulumi.{STACK}.yaml").write_text(text, encoding="utf-8")
            config = {
                **stack_config(project / f"Pulumi.{STACK}.yaml"),
                "azureml-pipelines:backend": "local",
                "azureml-pipelines:localStorePath": STORE,
            }
            # Each `pulumi up` starts its own provider host, which unpickles the providers.
            host = start_host(project, served, config)
            try:
                if engine is None:
                    engine = Engine(host, served)
                    engine.after_op.append(watch.after_op)
                    watch.engine = engine
                engine.host = host
                watch.step = label
                engine.up(runs[label], priority)
                watch.observe(f"end of {label}")
            finally:
                host.close()
        assert served.arm.unexpected == [] and served.refused == []
        return watch, runs, served


def _gaps_and_overlaps(watch: Watch, wanted: set[str]) -> tuple[list[str], list[str]]:
    """Moments after the first deploy where a wanted schedule ran nowhere, or twice across an
    `up` boundary (an overlap opened in one `up` and still open at its end)."""
    gaps: list[str] = []
    open_overlaps: list[str] = []
    first = STEPS[0][0]
    for moment in watch.moments:
        if moment.step == first:
            continue
        for name in sorted(wanted):
            count = (name in moment.v1) + (name in moment.v2)
            if count == 0:
                gaps.append(f"{moment.step}: {name} runs nowhere after {moment.write}")
            if count == 2 and moment.write.startswith("end of"):
                open_overlaps.append(f"{moment.step}: {name} runs under both APIs at the end")
        unwanted = (moment.v1 | moment.v2) - wanted
        assert not unwanted, (moment, unwanted)
    return gaps, open_overlaps


@pytest.mark.parametrize("priority", [PAUSE_EARLY, PAUSE_LATE], ids=["pause-early", "pause-late"])
def test_each_schedule_runs_under_one_api_through_a_cut_over_and_back(
    tmp_path: Path, priority: Callable[[Registration], int]
) -> None:
    wanted = _wanted()
    assert wanted
    watch, runs, served = _deploy_cut_over(tmp_path, priority)
    gaps, open_overlaps = _gaps_and_overlaps(watch, wanted)
    assert gaps == [] and open_overlaps == []

    ends = {m.step: m for m in watch.moments if m.write.startswith("end of")}
    assert ends["v1"].v1 == wanted and ends["v1"].v2 == frozenset()
    assert ends["v2 (retiring v1)"].v2 == wanted and ends["v2 (retiring v1)"].v1 == frozenset()
    assert ends["v2"].v2 == wanted
    assert ends["v1 (retiring v2)"].v1 == wanted and ends["v1 (retiring v2)"].v2 == frozenset()
    assert ends["v1 again"].v1 == wanted

    # In every cut-over `up`, a schedule runs twice only between the new API's schedule
    # becoming active and the old one's pause: count the writes of that hand-over.
    for step in ("v2 (retiring v1)", "v1 (retiring v2)"):
        moments = [m for m in watch.moments if m.step == step]
        both = [m for m in moments if m.v1 & m.v2]
        assert both, f"{step}: the new schedules were created before the old ones paused"
        assert moments[-1].v1 & moments[-1].v2 == frozenset()

    # The v1 endpoints stay reachable through the first switch; the second archives them.
    pipelines = {r.inputs["name"] for r in runs["v1"].of_type(V1_ENDPOINT)}
    assert ends["v1"].v1_endpoints == pipelines
    assert ends["v2 (retiring v1)"].v1_endpoints == pipelines
    assert ends["v2"].v1_endpoints == frozenset()
    assert ends["v1 again"].v1_endpoints == pipelines
    # The way back deleted v2's endpoints and schedules (deployments and environment versions
    # are retained on delete; component versions archived).
    v2_left = [p for p in served.arm.objects if p.startswith(("/schedules/", "/batchEndpoints/"))]
    assert [p for p in v2_left if "/deployments/" not in p] == []
    pipeline_components = [
        body
        for path, body in served.arm.objects.items()
        if path.startswith("/components/") and "__" not in path.split("/")[2]
    ]
    assert len(pipeline_components) == len(pipelines)
    assert all(body["properties"].get("isArchived") is True for body in pipeline_components)


def _without_cut_over_edges(label: str, run: ProgramRun) -> ProgramRun:
    """The same registrations with the edges from the retiring schedules to the new ones
    dropped (what the program would register without `schedules_after`)."""
    schedules = {r.urn for r in run.registrations if r.type in (V1_SCHEDULE, V2_SCHEDULE)}
    regs = []
    for reg in run.registrations:
        if _pauses(reg):
            deps = [d for d in reg.dependencies if d not in schedules]
            reg = Registration(**{**reg.__dict__, "dependencies": deps})
        regs.append(reg)
    return ProgramRun(run.stack, regs, run.exports)


def test_without_the_cut_over_dependencies_the_same_engine_leaves_a_gap(tmp_path: Path) -> None:
    # The check above can fail: the pause-early order on a graph without the edges the program
    # adds pauses a v1 schedule before its v2 replacement exists.
    watch, _, _ = _deploy_cut_over(tmp_path, PAUSE_EARLY, _without_cut_over_edges, STEPS[:2])
    gaps, _ = _gaps_and_overlaps(watch, _wanted())
    assert any(g.startswith("v2 (retiring v1):") for g in gaps), gaps
