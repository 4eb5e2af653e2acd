"""The two ways a step runs locally, behind one small interface.

`DockerExecutor` runs each step in a container of the training image (docker SDK, host network);
`ProcessExecutor` runs the same command line with local interpreters. Both stream merged
stdout/stderr line by line and can cancel a running step.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from infra.runner.errors import RunnerError
from infra.runner.plan import StepPlan

LineSink = Callable[[str], None]
CANCELLED_EXIT = 130


class RunningStep(Protocol):
    """A started step."""

    def wait(self, on_line: LineSink) -> int:
        """Stream the step's output lines to `on_line` until it ends; return its exit code."""
        ...

    def cancel(self) -> None:
        """Stop the step now and release what it holds (container, process group)."""
        ...


class Executor(Protocol):
    """Starts steps; knows how to clean up everything it started."""

    name: str

    def interpreters(self) -> dict[str, str]:
        """Command for Python and R steps ("python", "r" keys)."""
        ...

    def check(self, plans: Iterable[StepPlan]) -> None:
        """Raise :class:`RunnerError` when a step cannot possibly start (missing tool, image)."""
        ...

    def start(self, plan: StepPlan) -> RunningStep:
        """Start one step (its output folders already exist and are empty)."""
        ...

    def cleanup(self) -> None:
        """Remove whatever this executor started and left behind (used on Ctrl-C)."""
        ...


def split_lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """Decode a byte stream into lines, whatever the chunk boundaries (no line endings kept)."""
    pending = b""
    for chunk in chunks:
        pending += chunk
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.decode("utf-8", errors="replace").rstrip("\r")
    if pending:
        yield pending.decode("utf-8", errors="replace").rstrip("\r")


class _Process:
    """A step running as a local process group."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    def wait(self, on_line: LineSink) -> int:
        assert self._popen.stdout is not None
        # Iterating a pipe yields each line as soon as it is complete.
        for line in split_lines(self._popen.stdout):
            on_line(line)
        return self._popen.wait()

    def cancel(self) -> None:
        # The step may have started children (Rscript -> R): signal the whole group.
        try:
            os.killpg(self._popen.pid, signal.SIGTERM)
            self._popen.wait(timeout=5)
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            os.killpg(self._popen.pid, signal.SIGKILL)


def find_interpreter(env_var: str, candidates: list[str], what: str, install: str) -> str:
    """First of `$env_var` or `candidates` on PATH; a RunnerError saying what to do if none."""
    chosen = os.environ.get(env_var)
    for name in [chosen] if chosen else candidates:
        found = shutil.which(name)
        if found:
            return found
    tried = chosen or " or ".join(candidates)
    raise RunnerError(
        f"{what} not found: {tried} is not on PATH, and the --executor process run needs it",
        f"install it ({install}), set {env_var} to its path, or use --executor docker",
    )


class ProcessExecutor:
    """Runs steps with local interpreters: Python (`python3`/`python`) and `Rscript`."""

    name = "process"

    def __init__(self, kinds: set[str]) -> None:
        """Find the interpreters the given step kinds need; RunnerError when one is missing."""
        self._running: list[_Process] = []
        self._interpreters = {"python": "python3", "r": "Rscript"}
        if "python" in kinds:
            self._interpreters["python"] = find_interpreter(
                "AMLPIPE_PYTHON", ["python3", "python"], "Python", "e.g. apt-get install python3"
            )
        if "r" in kinds:
            self._interpreters["r"] = find_interpreter(
                "AMLPIPE_RSCRIPT", ["Rscript"], "Rscript (R)", "e.g. apt-get install r-base-core"
            )

    def interpreters(self) -> dict[str, str]:
        return dict(self._interpreters)

    def check(self, plans: Iterable[StepPlan]) -> None:
        for plan in plans:
            program = plan.argv[0]
            local = (plan.code_dir / program).is_file() if "/" in program else False
            if not local and shutil.which(program) is None:
                raise RunnerError(
                    f"step {plan.name!r}: command {program!r} not found on PATH",
                    "install it, or use --executor docker",
                )

    def start(self, plan: StepPlan) -> RunningStep:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(plan.environment)
        popen = subprocess.Popen(
            plan.argv,
            cwd=plan.code_dir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C is handled by the runner
        )
        process = _Process(popen)
        self._running.append(process)
        return process

    def cleanup(self) -> None:
        for process in self._running:
            process.cancel()
