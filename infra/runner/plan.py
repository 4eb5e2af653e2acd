"""What each step of a local run executes: its command line, folders and mounts.

The argument list comes from the shared resolver with :class:`LocalBinder`; the binder only decides
how a reference is spelled on this machine (a path inside the container, or a host path).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from infra.definitions.command import step_command
from infra.definitions.loader import LoadedPipeline
from infra.definitions.model import AnyStep, ParameterValue
from infra.definitions.refs import format_value, resolve_arguments, step_inputs

# Where a container sees its folders. Fixed paths keep argument lists readable in logs.
CONTAINER_ROOT = PurePosixPath("/amlpipe")
CONTAINER_CODE = CONTAINER_ROOT / "code"


@dataclass(frozen=True)
class RunLayout:
    """The run folder: `outputs/<step>/<output>/`, `logs/<step>.log`, `summary.json`."""

    root: Path

    def output_dir(self, step: str, output: str) -> Path:
        """Host folder of one step output."""
        return self.root / "outputs" / step / output

    def log_file(self, step: str) -> Path:
        """Host log file of one step."""
        return self.root / "logs" / f"{step}.log"

    @property
    def summary_file(self) -> Path:
        """The run summary (JSON)."""
        return self.root / "summary.json"


@dataclass(frozen=True)
class Mount:
    """A host folder made visible to a step."""

    host: Path
    target: str
    """Path the step uses: inside the container, or the host path itself for processes."""
    read_only: bool


@dataclass(frozen=True)
class StepPlan:
    """Everything needed to start one step."""

    name: str
    kind: str
    code_dir: Path
    workdir: str
    """Working directory as the step sees it (the code folder)."""
    argv: list[str]
    """Full command line: interpreter (or command) and resolved arguments."""
    mounts: list[Mount]
    outputs: dict[str, Path]
    inputs: dict[tuple[str, str], Path]
    """(upstream step, output) -> host folder this step reads."""
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LocalBinder:
    """Spells references for a local run (the local half of the shared argument resolver)."""

    step: str
    layout: RunLayout
    parameters: Mapping[str, ParameterValue]
    in_container: bool

    def literal(self, value: str) -> str:
        """Literals pass through unchanged."""
        return value

    def parameter(self, name: str) -> str:
        """The run's value of a pipeline parameter, as Azure ML would pass it."""
        return format_value(self.parameters[name])

    def step_input(self, step: str, output: str) -> str:
        """The folder holding an upstream step's output (mounted read-only)."""
        if self.in_container:
            return str(CONTAINER_ROOT / "inputs" / step / output)
        return str(self.layout.output_dir(step, output).resolve())

    def step_output(self, name: str) -> str:
        """A fresh folder this step writes."""
        if self.in_container:
            return str(CONTAINER_ROOT / "outputs" / name)
        return str(self.layout.output_dir(self.step, name).resolve())


def plan_step(
    loaded: LoadedPipeline,
    step: AnyStep,
    layout: RunLayout,
    parameters: Mapping[str, ParameterValue],
    *,
    in_container: bool,
    interpreters: Mapping[str, str],
) -> StepPlan:
    """The plan of one step: resolved command line, code folder, input and output folders."""
    binder = LocalBinder(step.name, layout, parameters, in_container)
    args = resolve_arguments(step.arguments, binder)
    code_dir = (loaded.folder / step.code).resolve()
    outputs = {name: layout.output_dir(step.name, name).resolve() for name in step.outputs}
    inputs = {
        (r.step, r.output): layout.output_dir(r.step, r.output).resolve()
        for r in step_inputs(step.arguments)
    }
    workdir = str(CONTAINER_CODE) if in_container else str(code_dir)
    mounts = [Mount(code_dir, workdir, read_only=True)]
    mounts += [
        Mount(path, binder.step_input(up_step, up_output), read_only=True)
        for (up_step, up_output), path in inputs.items()
    ]
    mounts += [
        Mount(path, binder.step_output(name), read_only=False) for name, path in outputs.items()
    ]
    return StepPlan(
        name=step.name,
        kind=step.kind,
        code_dir=code_dir,
        workdir=workdir,
        argv=step_command(step).argv(interpreters) + args,
        mounts=mounts,
        outputs=outputs,
        inputs=inputs,
        environment=dict(step.environment),
    )
