"""`amlpipe run`: load a pipeline, resolve its parameters, plan and run its steps, write the run
folder (`outputs/`, `logs/`, `summary.json`)."""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from infra.definitions.graph import topological_order, upstream_of
from infra.definitions.hashing import PipelineDigest, pipeline_digest
from infra.definitions.loader import LoadedPipeline, find_repo_root
from infra.definitions.model import ParameterValue
from infra.plaintext import PlainConsole
from infra.runner.console import ConsoleObserver, print_report
from infra.runner.errors import RunnerError
from infra.runner.executor import Executor, ProcessExecutor
from infra.runner.interrupts import StopSignals
from infra.runner.params import resolve_parameters
from infra.runner.plan import RunLayout, StepPlan, plan_step
from infra.runner.scheduler import DEFAULT_GRACE_SECONDS, Scheduler, StepState, StepStatus

if TYPE_CHECKING:
    from rich.console import Console

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
    stop_grace: float = DEFAULT_GRACE_SECONDS
    """Seconds between SIGTERM and SIGKILL when the run stops steps."""


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
    """The run folder: `--run-dir` (must be empty or absent) or `runs/<pipeline>/<run id>`.

    An early check only, so a run that cannot start says so before engine and image checks;
    :func:`claim_run_dir` is what makes the folder this run's."""
    root = requested or repo_root / "runs" / pipeline / run_id
    try:
        if root.exists() and not root.is_dir():
            raise RunnerError(f"run folder {root} exists and is not a folder", _RUN_DIR_HINT)
        if root.is_dir() and any(root.iterdir()):
            raise RunnerError(f"run folder {root} is not empty", _RUN_DIR_HINT)
    except OSError as exc:
        raise RunnerError(f"run folder {root}: {exc.strerror or exc}", _RUN_DIR_HINT) from None
    return root.resolve()


_RUN_DIR_HINT = "choose another --run-dir (an empty or new folder)"
CLAIM_FILE = ".amlpipe-run"
"""Created exclusively in a run folder by the run that owns it (JSON: run id, pid)."""


def claim_run_dir(root: Path, run_id: str) -> None:
    """Make `root` this run's folder, atomically: of two runs started together into one folder,
    exactly one gets it and the other fails here, before any step starts.

    The claim is an exclusive create (`O_CREAT | O_EXCL`) of :data:`CLAIM_FILE` in the folder,
    which the file system grants to one process only. A folder holding anything else is refused
    after the claim (and the claim withdrawn), so a folder used before stays as it was.
    """
    claim = root / CLAIM_FILE
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise RunnerError(
            f"run folder {root} already belongs to {_claim_owner(claim)}", _RUN_DIR_HINT
        ) from None
    except OSError as exc:
        raise RunnerError(
            f"cannot create run folder {root}: {exc.strerror or exc}", _RUN_DIR_HINT
        ) from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"run_id": run_id, "pid": os.getpid()}, handle)
    others = sorted(entry.name for entry in root.iterdir() if entry.name != CLAIM_FILE)
    if others:
        claim.unlink()
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise RunnerError(f"run folder {root} is not empty ({shown})", _RUN_DIR_HINT)


def refuse_run_dir_in_code(run_dir: Path, loaded: LoadedPipeline) -> None:
    """A run folder inside a step's code folder would put outputs and logs into the code the
    run is hashed from (and uploaded from, when published): refused."""
    for step in loaded.spec.steps:
        code = (loaded.folder / step.code).resolve()
        if run_dir == code or code in run_dir.parents:
            raise RunnerError(
                f"run folder {run_dir} is inside the code folder of step {step.name!r} ({code}):"
                " the run's outputs would change the step's code and the pipeline's hash",
                "choose a --run-dir outside every code folder",
            )


def _claim_owner(claim: Path) -> str:
    try:
        data = json.loads(claim.read_text(encoding="utf-8"))
        return f"run {data['run_id']} (pid {data['pid']})"
    except (OSError, ValueError, KeyError, TypeError):
        # Claimed a moment ago and not written yet (or unreadable): taken all the same.
        return "another run"


def point_latest_at(root: Path) -> None:
    """`runs/<pipeline>/latest` -> this run, replaced atomically (two runs may start together)."""
    latest = root.parent / "latest"
    temporary = root.parent / f".latest-{root.name}"
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(root.name, target_is_directory=True)
    os.replace(temporary, latest)


def make_executor(
    options: RunOptions, loaded: LoadedPipeline, context: Path, run_id: str, run_dir: Path
) -> tuple[Executor, str | None]:
    """The executor for this run and the image it uses (None for processes)."""
    if options.executor == "process":
        return ProcessExecutor({step.kind for step in loaded.spec.steps}), None
    from infra.runner.docker_engine import DockerExecutor, connect, default_image, ensure_image

    client = connect(options.jobs)
    if options.image:
        ensure_image(client, options.image, context)
        image = options.image
    else:
        image = default_image(client, context)  # found in the engine (or a RunnerError)
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


def _prepare(loaded: LoadedPipeline, options: RunOptions, signals: StopSignals) -> _Prepared:
    """Check everything that can be checked before a step runs, then create the run folder."""
    spec = loaded.spec
    parameters = resolve_parameters(spec.parameters, options.params)
    repo_root = find_repo_root(loaded.folder)
    started_at = datetime.now(UTC)
    run_id = new_run_id(started_at)
    run_dir = choose_run_dir(options.run_dir, repo_root, spec.name, run_id)
    refuse_run_dir_in_code(run_dir, loaded)
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
    # From here on a stop signal is acted on by the scheduler (steps stopped, summary written);
    # before, it simply ends `amlpipe run` with nothing left behind.
    signals.defer()
    claim_run_dir(run_dir, run_id)
    if options.run_dir is None:
        point_latest_at(run_dir)
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


def run_pipeline(
    loaded: LoadedPipeline,
    options: RunOptions,
    console: Console | PlainConsole,
    signals: StopSignals | None = None,
) -> RunSummary:
    """Run every step of `loaded`; write and return the run summary.

    `signals` (installed by the CLI) lets SIGINT/SIGTERM stop the run cleanly; without it the
    run reacts to KeyboardInterrupt only."""
    signals = signals or StopSignals()
    run = _prepare(loaded, options, signals)
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
        signals=signals,
        grace_seconds=options.stop_grace,
    )
    try:
        states = scheduler.run()
    finally:
        observer.stop()
        run.executor.close()
    summary = _summarize(loaded, options, run, states, scheduler.interrupted)
    run.layout.summary_file.write_text(
        json.dumps(asdict(summary), indent=2) + "\n", encoding="utf-8"
    )
    print_report(console, states, str(run.layout.root))
    return summary
