"""The two ways a step runs locally, behind one small interface.

`DockerExecutor` runs each step in a container of the training image (docker SDK, host network);
`ProcessExecutor` runs the same command line with local interpreters. In both, the step's merged
stdout/stderr goes straight into its log file (no copy through this process, so a step printing
hundreds of megabytes runs at its own speed); the scheduler follows the file for the console.
Stopping is two-phase: `terminate` asks (SIGTERM), `kill` ends it now (SIGKILL) and releases what
the step holds.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from infra.runner.errors import RunnerError
from infra.runner.plan import StepPlan

CANCELLED_EXIT = 130


class RunningStep(Protocol):
    """A started step."""

    def wait(self) -> int:
        """Block until the step has ended (and everything it started); return its exit code."""
        ...

    def terminate(self) -> None:
        """Ask the step to stop (SIGTERM to its process group or container); do not wait."""
        ...

    def kill(self) -> None:
        """Stop the step and everything it started now (SIGKILL) and release what it holds."""
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

    def start(self, plan: StepPlan, log_file: Path) -> RunningStep:
        """Start one step writing its output to `log_file` (an existing empty file; its output
        folders already exist and are empty)."""
        ...

    def cleanup(self) -> None:
        """End and remove whatever this executor started and left behind (after a stop)."""
        ...

    def close(self) -> None:
        """Release what the executor holds once the run is over (staged copies, connections)."""
        ...


class _ProcessGroup:
    """A step running as the leader of its own process group.

    The leader is not reaped until its group has been killed: while it is a zombie its pid cannot
    be reused, so signalling the group can never hit an unrelated process.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen
        self._lock = threading.Lock()
        self._reaped = False

    def wait(self) -> int:
        # Block until the leader exits, leaving it a zombie (WNOWAIT) ...
        os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            # ... then end what it left running, as a container's end does, and only then reap.
            self._signal(signal.SIGKILL)
            code = self._popen.wait()
            self._reaped = True
        return code

    def terminate(self) -> None:
        with self._lock:
            if not self._reaped:
                self._signal(signal.SIGTERM)

    def kill(self) -> None:
        with self._lock:
            if not self._reaped:
                self._signal(signal.SIGKILL)

    def _signal(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # the group is already empty
            os.killpg(self._popen.pid, signum)


def stage_code(source: Path, target: Path) -> None:
    """Copy a code folder to `target` and make the copy read-only, files and folders.

    The step runs in the copy, as a container runs in its read-only snapshot mount: whatever it
    writes there never reaches the code folder (so never the pipeline's hash). Symbolic links are
    copied as what they point to, so none leads back out of the copy.
    """
    shutil.copytree(source, target, symlinks=False)
    for root, _dirs, files in os.walk(target, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            os.chmod(path, os.stat(path).st_mode & ~0o222)
        os.chmod(root, 0o555)


def remove_staged(target: Path) -> None:
    """Delete a tree made by :func:`stage_code` (its folders made writable again first)."""
    if not target.exists():
        return
    for root, _dirs, _files in os.walk(target):
        os.chmod(root, 0o755)
    shutil.rmtree(target, ignore_errors=True)


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
    """Runs steps with local interpreters: Python (`python3`/`python`) and `Rscript`.

    Each step runs in its own process group, in a read-only copy of its code folder (see
    README, "What --executor process does not isolate").
    """

    name = "process"

    def __init__(self, kinds: set[str]) -> None:
        """Find the interpreters the given step kinds need; RunnerError when one is missing."""
        self._running: list[_ProcessGroup] = []
        self._staging: Path | None = None
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

    def start(self, plan: StepPlan, log_file: Path) -> RunningStep:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.update(plan.environment)
        if self._staging is None:
            self._staging = Path(tempfile.mkdtemp(prefix="amlpipe-code-"))
        code = self._staging / plan.name
        try:
            stage_code(plan.code_dir, code)
        except (OSError, shutil.Error) as exc:
            raise RunnerError(f"cannot copy its code folder {plan.code_dir}: {exc}") from None
        with log_file.open("ab") as log:
            popen = subprocess.Popen(
                plan.argv,
                cwd=code,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group (and session): signals reach the step and its children
                # together, and the terminal's Ctrl-C reaches only the runner, which decides.
                start_new_session=True,
            )
        process = _ProcessGroup(popen)
        self._running.append(process)
        return process

    def cleanup(self) -> None:
        for process in self._running:
            process.kill()

    def close(self) -> None:
        if self._staging is not None:
            remove_staged(self._staging)
            self._staging = None
