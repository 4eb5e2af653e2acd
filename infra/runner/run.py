"""`amlpipe run`: load a pipeline, resolve its parameters, plan and run its steps, write the run
folder (`outputs/`, `logs/`, `summary.json`)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from rich.console import Console

from infra.definitions.graph import topological_order, upstream_of
from infra.definitions.hashing import PipelineDigest, pipeline_digest
from infra.definitions.loader import LoadedPipeline, find_repo_root
from infra.definitions.model import ParameterValue
from infra.runner.console import ConsoleObserver, print_report
from infra.runner.errors import RunnerError
from infra.runner.executor import Executor, ProcessExecutor
from infra.runner.params import resolve_parameters
from infra.runner.plan import RunLayout, StepPlan, plan_step
from infra.runner.scheduler import Scheduler, StepState, StepStatus

ExecutorName = Literal["docker", "process"]
RunStatus = Literal["succeeded", "failed", "cancelled"]
EXIT_CODES: dict[RunStatus, int] = {"succeeded": 0, "failed": 1, "cancelled": 130}


@dataclass(frozen=True)
class RunOptions:
    """What `amlpipe run` was asked to do."""

    params: list[str] = field(default_factory=list)
    executor: ExecutorName = "docker"
    image: str | None = None
    jobs: int = 2
    run_dir: Path | None = None
    fail_fast: bool = False


@dataclass(frozen=True)
class StepSummary:
    """One step in `summary.json`."""

    status: str
    exit_code: int | None
    started_at: str | None
    duration_seconds: float | None
    log: str
    outputs: dict[str, str]
    message: str


@dataclass(frozen=True)
class RunSummary:
    """`summary.json` of a run folder."""

    pipeline: str
    run_id: str
    status: RunStatus
    executor: str
    image: str | None
    pipeline_hash: str
    step_hashes: dict[str, str]
    parameters: dict[str, ParameterValue]
    started_at: str
    finished_at: str
    duration_seconds: float
    jobs: int
    failed_steps: list[str]
    steps: dict[str, StepSummary]


def new_run_id(now: datetime) -> str:
    """Sortable and unique: `20260101-120000-a1b2c3`."""
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def choose_run_dir(requested: Path | None, repo_root: Path, pipeline: str, run_id: str) -> Path:
    """The run folder: `--run-dir` (must be empty or absent) or `runs/<pipeline>/<run id>`."""
    root = requested or repo_root / "runs" / pipeline / run_id
    if root.exists() and any(root.iterdir()):
        raise RunnerError(f"run folder {root} is not empty", "choose another --run-dir")
    return root.resolve()


def create_run_dir(root: Path, default_layout: bool) -> None:
    """Create the run folder; in the default layout point `runs/<pipeline>/latest` at it."""
    root.mkdir(parents=True, exist_ok=True)
    if default_layout:
        latest = root.parent / "latest"
        latest.unlink(missing_ok=True)
        latest.symlink_to(root.name, target_is_directory=True)


def make_executor(
    options: RunOptions, loaded: LoadedPipeline, context: Path, run_id: str, run_dir: Path
) -> tuple[Executor, str | None]:
    """The executor for this run and the image it uses (None for processes)."""
    if options.executor == "process":
        return ProcessExecutor({step.kind for step in loaded.spec.steps}), None
    from infra.runner.docker_engine import DockerExecutor, connect, default_image, ensure_image

    client = connect(options.jobs)
    image = options.image or default_image(client, context)
    ensure_image(client, image, context)
    labels = {"amlpipe.pipeline": loaded.spec.name, "amlpipe.run-dir": str(run_dir)}
    return DockerExecutor(client, image, run_id, labels), image


def _step_summary(state: StepState, layout: RunLayout) -> StepSummary:
    def rel(path: Path) -> str:
        return path.relative_to(layout.root).as_posix()

    return StepSummary(
        status=state.status.value,
        exit_code=state.exit_code,
        started_at=state.started_at.isoformat() if state.started_at else None,
        duration_seconds=None if state.duration is None else round(state.duration, 3),
        log=rel(layout.log_file(state.plan.name)),
        outputs={name: rel(path) for name, path in state.plan.outputs.items()},
        message=state.message,
    )


def _status(states: dict[str, StepState], interrupted: bool) -> RunStatus:
    if interrupted:
        return "cancelled"
    if all(s.status is StepStatus.SUCCEEDED for s in states.values()):
        return "succeeded"
    return "failed"


@dataclass(frozen=True)
class _Prepared:
    """A run that can start: folder, executor, image, step plans, parameter values, hash."""

    run_id: str
    started_at: datetime
    layout: RunLayout
    executor: Executor
    image: str | None
    plans: list[StepPlan]
    parameters: dict[str, ParameterValue]
    digest: PipelineDigest


def _prepare(loaded: LoadedPipeline, options: RunOptions) -> _Prepared:
    """Check everything that can be checked before a step runs, then create the run folder."""
    spec = loaded.spec
    parameters = resolve_parameters(spec.parameters, options.params)
    repo_root = find_repo_root(loaded.folder)
    started_at = datetime.now(UTC)
    run_id = new_run_id(started_at)
    run_dir = choose_run_dir(options.run_dir, repo_root, spec.name, run_id)
    # Engine, image and interpreters are checked before the run folder exists: a run that cannot
    # start leaves nothing behind.
    executor, image = make_executor(options, loaded, repo_root / "docker", run_id, run_dir)
    layout = RunLayout(run_dir)
    plans = [
        plan_step(
            loaded,
            spec.step(name),
            layout,
            parameters,
            in_container=options.executor == "docker",
            interpreters=executor.interpreters(),
        )
        for name in topological_order(spec)
    ]
    executor.check(plans)
    create_run_dir(run_dir, default_layout=options.run_dir is None)
    image_refs = {spec.step_image(s): image for s in spec.steps} if image else None
    digest = pipeline_digest(loaded, image_refs)
    return _Prepared(run_id, started_at, layout, executor, image, plans, parameters, digest)


def _summarize(
    loaded: LoadedPipeline,
    options: RunOptions,
    run: _Prepared,
    states: dict[str, StepState],
    interrupted: bool,
) -> RunSummary:
    finished_at = datetime.now(UTC)
    return RunSummary(
        pipeline=loaded.spec.name,
        run_id=run.run_id,
        status=_status(states, interrupted),
        executor=run.executor.name,
        image=run.image,
        pipeline_hash=run.digest.digest,
        step_hashes={name: step.digest for name, step in run.digest.steps.items()},
        parameters=run.parameters,
        started_at=run.started_at.isoformat(),
        finished_at=finished_at.isoformat(),
        duration_seconds=round((finished_at - run.started_at).total_seconds(), 3),
        jobs=options.jobs,
        failed_steps=[n for n, s in states.items() if s.status is StepStatus.FAILED],
        steps={name: _step_summary(state, run.layout) for name, state in states.items()},
    )


def run_pipeline(loaded: LoadedPipeline, options: RunOptions, console: Console) -> RunSummary:
    """Run every step of `loaded`; write and return the run summary."""
    run = _prepare(loaded, options)
    console.print(
        f"[bold]run {loaded.spec.name}[/] {run.run_id} · executor {run.executor.name}"
        + (f" · image {run.image}" if run.image else "")
        + f" · jobs {options.jobs} · hash {run.digest.digest[:16]}",
        soft_wrap=True,
    )
    observer = ConsoleObserver(console, [p.name for p in run.plans])
    scheduler = Scheduler(
        run.plans,
        upstream_of(loaded.spec),
        run.executor,
        run.layout,
        jobs=options.jobs,
        fail_fast=options.fail_fast,
        observer=observer,
    )
    try:
        states = scheduler.run()
    finally:
        observer.stop()
    summary = _summarize(loaded, options, run, states, scheduler.interrupted)
    run.layout.summary_file.write_text(
        json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8"
    )
    print_report(console, states, str(run.layout.root))
    return summary
