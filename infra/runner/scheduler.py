"""Runs a pipeline's steps in DAG order, independent branches in parallel up to `jobs`.

Each running step has a watcher thread that follows its log file (the step writes it directly)
and reports a bounded number of lines per second plus its end into a queue; the calling thread
owns all state and the console, so no locks are needed. On a failure no new step starts; running
steps finish (or are stopped with `fail_fast`). A stop signal (see :mod:`infra.runner.interrupts`)
stops running steps gracefully: SIGTERM, SIGKILL after the grace period or at a second signal,
then whatever the executor started is removed.
"""

from __future__ import annotations

import queue
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from infra.runner.executor import CANCELLED_EXIT, Executor, RunningStep
from infra.runner.interrupts import StopSignals
from infra.runner.plan import RunLayout, StepPlan

TAIL_LINES = 20
DEFAULT_GRACE_SECONDS = 10.0
"""Between SIGTERM and SIGKILL when a run stops (Docker's own default for `docker stop`)."""
LINES_PER_SECOND = 200
"""Console lines shown per step and second once the burst is used; the log keeps every line."""
LINE_BURST = 1000
MAX_SHOWN_CHARS = 4000
"""A longer line is cut on the console (not in the log)."""
HIDDEN_NOTICE_SECONDS = 2.0
READ_SIZE = 1 << 20
SMALL_READ = 64 * 1024
POLL_SECONDS = 0.05
"""How often a quiet log is looked at: the console lags the step by at most this."""
CONFIRM_SECONDS = 15.0
"""After SIGKILL, how long to wait for a step's end to be confirmed before giving up on it."""


class StepStatus(StrEnum):
    """Life cycle of a step in a local run."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """Not started because the run stopped (an earlier failure or a stop signal)."""


@dataclass
class StepState:
    """Mutable state of one step during a run (owned by the scheduler thread)."""

    plan: StepPlan
    status: StepStatus = StepStatus.WAITING
    exit_code: int | None = None
    message: str = ""
    started: float | None = None
    finished: float | None = None
    started_at: datetime | None = None
    """Wall-clock start (the monotonic `started` gives durations)."""
    tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    lines: int = 0
    """Lines the step printed (all of them are in its log)."""
    hidden_lines: int = 0
    """Lines not shown on the console (rate limit)."""

    @property
    def duration(self) -> float | None:
        """Seconds the step ran (so far, while running)."""
        if self.started is None:
            return None
        return (self.finished or time.monotonic()) - self.started


@dataclass(frozen=True)
class _Lines:
    step: str
    texts: list[str]


@dataclass(frozen=True)
class _Hidden:
    step: str
    count: int


@dataclass(frozen=True)
class _Done:
    step: str
    exit_code: int | None
    tail: list[str]
    lines: int
    error: str = ""


_Event = _Lines | _Hidden | _Done


class Observer:
    """What the scheduler tells the outside world (console, progress); default: nothing."""

    def line(self, step: str, text: str) -> None:
        """One output line of a step."""

    def hidden(self, step: str, count: int, log_file: Path) -> None:
        """`count` more lines of a step went only to its log (console rate limit)."""

    def changed(self, state: StepState) -> None:
        """A step changed status."""

    def stopping(self, message: str) -> None:
        """The run is stopping running steps (signal or --fail-fast)."""

    def tick(self, states: Mapping[str, StepState]) -> None:
        """Called a few times per second while steps run (progress display)."""


def _text(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    if len(text) > MAX_SHOWN_CHARS:
        return f"{text[:MAX_SHOWN_CHARS]}… ({len(text) - MAX_SHOWN_CHARS} more characters)"
    return text


class LogFollower:
    """Follows a log file a step writes: keeps the last lines, counts them, and passes on at
    most `rate` lines per second (after a burst) to `emit`; lines beyond that are counted and
    reported as hidden every few seconds. Memory stays bounded whatever the step prints."""

    def __init__(
        self,
        path: Path,
        step: str,
        emit: Callable[[_Event], None],
        rate: float = LINES_PER_SECOND,
        burst: int = LINE_BURST,
    ) -> None:
        self._file = path.open("rb")
        self._step = step
        self._emit = emit
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._pending = b""
        self._hidden = 0
        self._noticed = time.monotonic()
        self.tail: deque[bytes] = deque(maxlen=TAIL_LINES)
        self.lines = 0

    def poll(self) -> int:
        """Read what the step wrote since the last call (up to 1 MiB); return how many bytes."""
        chunk = self._file.read(READ_SIZE)
        if chunk:
            self._take(chunk)
        return len(chunk)

    def finish(self) -> None:
        """Read to the end, pass on the unterminated last line and report hidden lines."""
        while self.poll():
            pass
        if self._pending:
            self._lines([self._pending])
            self._pending = b""
        self._notice(force=True)
        self._file.close()

    def tail_text(self) -> list[str]:
        """The last lines, decoded."""
        return [_text(line) for line in self.tail]

    def _take(self, chunk: bytes) -> None:
        *lines, self._pending = (self._pending + chunk).split(b"\n")
        if len(self._pending) > READ_SIZE:
            # A "line" without end: shown (cut) as a line of its own so memory stays bounded.
            lines.append(self._pending)
            self._pending = b""
        if lines:
            self._lines(lines)
        self._notice(force=False)

    def _lines(self, lines: list[bytes]) -> None:
        self.lines += len(lines)
        self.tail.extend(lines[-TAIL_LINES:])
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        shown = min(len(lines), int(self._tokens))
        self._tokens -= shown
        self._hidden += len(lines) - shown
        if shown:
            self._emit(_Lines(self._step, [_text(line) for line in lines[:shown]]))

    def _notice(self, force: bool) -> None:
        now = time.monotonic()
        if self._hidden and (force or now - self._noticed >= HIDDEN_NOTICE_SECONDS):
            self._emit(_Hidden(self._step, self._hidden))
            self._hidden = 0
            self._noticed = now


class Scheduler:
    """Executes planned steps respecting `upstream` dependencies."""

    def __init__(
        self,
        plans: list[StepPlan],
        upstream: Mapping[str, set[str]],
        executor: Executor,
        layout: RunLayout,
        *,
        jobs: int,
        fail_fast: bool,
        observer: Observer | None = None,
        signals: StopSignals | None = None,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
    ) -> None:
        self.states = {plan.name: StepState(plan) for plan in plans}
        self._order = [plan.name for plan in plans]
        self._upstream = upstream
        self._executor = executor
        self._layout = layout
        self._jobs = max(1, jobs)
        self._fail_fast = fail_fast
        self._observer = observer or Observer()
        self._signals = signals or StopSignals()
        self._grace = max(0.0, grace_seconds)
        self._events: queue.Queue[_Event] = queue.Queue()
        self._running: dict[str, RunningStep] = {}
        self._stopping = False
        self._kill_at: float | None = None
        self._give_up_at: float | None = None
        self.interrupted = False

    def run(self) -> dict[str, StepState]:
        """Run until every step finished or the run stopped; returns the final states."""
        while True:
            try:
                if not self._advance():
                    break
            except KeyboardInterrupt:
                # Signals not deferred by the caller (the default Ctrl-C handler): same meaning.
                self._signals.note(signal.SIGINT)
        if self.interrupted or self._give_up_at is not None:
            self._cleanup()
        for state in self.states.values():
            if state.status is StepStatus.WAITING:
                self._set(state, StepStatus.SKIPPED)
        return self.states

    def _advance(self) -> bool:
        """One turn of the loop; False when nothing runs any more."""
        if self._signals.count and not self.interrupted:
            self.interrupted = True
            self._stop_running(f"cancelled by {self._signals.reason}")
        now = time.monotonic()
        if self._kill_at is not None and (now >= self._kill_at or self._signals.hurried):
            self._kill_running()
        if self._give_up_at is not None and now >= self._give_up_at:
            for name in self._running:
                self.states[name].message += " (its end was never confirmed)"
            self._running.clear()
        if not self._stopping:
            self._start_ready()
        if not self._running:
            return False
        stopping = self._kill_at is not None or self._give_up_at is not None
        self._pump(timeout=POLL_SECONDS if stopping else 0.25)
        return True

    def _cleanup(self) -> None:
        # Never skipped: a signal arriving now is only counted (or, with the default handler,
        # interrupts one attempt and the next one finishes the job).
        for _ in range(3):
            try:
                self._executor.cleanup()
                return
            except KeyboardInterrupt:
                self._signals.note(signal.SIGINT)

    # -- starting ---------------------------------------------------------------------------

    def _ready(self) -> list[StepState]:
        done = {n for n, s in self.states.items() if s.status is StepStatus.SUCCEEDED}
        return [
            self.states[name]
            for name in self._order
            if self.states[name].status is StepStatus.WAITING and self._upstream[name] <= done
        ]

    def _start_ready(self) -> None:
        for state in self._ready():
            if len(self._running) >= self._jobs or self._stopping:
                return
            self._start(state)

    def _missing_input(self, plan: StepPlan) -> str:
        for (step, output), folder in plan.inputs.items():
            if not folder.is_dir() or not any(folder.iterdir()):
                return (
                    f"input steps.{step}.outputs.{output} is empty: step {step!r} wrote nothing "
                    f"to its output {output!r} ({folder})"
                )
        return ""

    def _start(self, state: StepState) -> None:
        plan = state.plan
        state.started = time.monotonic()
        state.started_at = datetime.now(UTC)
        if problem := self._missing_input(plan):
            self._fail(state, None, problem)
            return
        for folder in plan.outputs.values():
            # Each declared output is a fresh, empty folder, as on Azure ML.
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        log_file = self._layout.log_file(plan.name)
        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_file.write_bytes(b"")
        try:
            handle = self._executor.start(plan, log_file)
        except Exception as exc:  # an engine or OS error is this step's failure, reported as such
            self._fail(state, None, f"could not start: {exc}")
            return
        self._running[plan.name] = handle
        self._set(state, StepStatus.RUNNING)
        threading.Thread(
            target=self._watch,
            args=(plan.name, handle, log_file),
            name=f"step-{plan.name}",
            daemon=True,
        ).start()

    def _watch(self, name: str, handle: RunningStep, log_file: Path) -> None:
        """Worker thread: follow the log while the step runs, then report its end."""
        ended = threading.Event()
        outcome: dict[str, int | str] = {}

        def wait() -> None:
            try:
                outcome["code"] = handle.wait()
            except Exception as exc:
                outcome["error"] = f"lost track of the step: {exc}"
            finally:
                ended.set()

        threading.Thread(target=wait, name=f"wait-{name}", daemon=True).start()
        follower = LogFollower(log_file, name, self._events.put)
        try:
            while not ended.is_set():
                if follower.poll() < SMALL_READ:
                    ended.wait(POLL_SECONDS)
            follower.finish()
        except OSError as exc:
            outcome.setdefault("error", f"could not read its log {log_file}: {exc}")
            ended.wait()
        code = outcome.get("code")
        self._events.put(
            _Done(
                name,
                code if isinstance(code, int) else None,
                follower.tail_text(),
                follower.lines,
                str(outcome.get("error", "")),
            )
        )

    # -- events -----------------------------------------------------------------------------

    def _pump(self, timeout: float) -> None:
        """Handle events for up to `timeout` seconds; return at once when a step ends, so the
        next ready step starts without waiting for the progress tick."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                event = self._events.get(timeout=remaining)
            except queue.Empty:
                break
            self._handle(event)
            if isinstance(event, _Done) or (self._signals.count and not self.interrupted):
                break
        self._observer.tick(self.states)

    def _handle(self, event: _Event) -> None:
        state = self.states[event.step]
        if isinstance(event, _Lines):
            for text in event.texts:
                self._observer.line(event.step, text)
            return
        if isinstance(event, _Hidden):
            state.hidden_lines += event.count
            self._observer.hidden(event.step, event.count, self._layout.log_file(event.step))
            return
        state.tail.clear()
        state.tail.extend(event.tail)
        state.lines = event.lines
        if self._running.pop(event.step, None) is None:
            return  # given up on already
        if state.status is StepStatus.CANCELLED:
            state.exit_code = event.exit_code
            return
        if event.exit_code == 0 and not event.error:
            state.exit_code = 0
            self._set(state, StepStatus.SUCCEEDED)
        elif event.exit_code == CANCELLED_EXIT and self._stopping:
            state.exit_code = event.exit_code
            self._set(state, StepStatus.CANCELLED)
        else:
            self._fail(state, event.exit_code, event.error or f"exit code {event.exit_code}")

    # -- stopping ---------------------------------------------------------------------------

    def _fail(self, state: StepState, exit_code: int | None, message: str) -> None:
        state.exit_code = exit_code
        state.message = message
        self._set(state, StepStatus.FAILED)
        self._stopping = True
        if self._fail_fast:
            self._stop_running(f"cancelled: step {state.plan.name!r} failed (--fail-fast)")

    def _stop_running(self, message: str) -> None:
        """Ask every running step to stop (SIGTERM); SIGKILL follows after the grace period."""
        self._stopping = True
        for name, handle in self._running.items():
            state = self.states[name]
            state.message = message
            self._set(state, StepStatus.CANCELLED)
            handle.terminate()
        if self._running:
            kill_at = time.monotonic() + self._grace
            self._kill_at = min(self._kill_at or kill_at, kill_at)
            self._observer.stopping(
                f"stopping {len(self._running)} running step(s): SIGTERM sent, SIGKILL in "
                f"{self._grace:g}s"
                + (" (interrupt again to end them now)" if self.interrupted else "")
            )

    def _kill_running(self) -> None:
        self._kill_at = None
        if self._running:
            self._observer.stopping(f"killing {len(self._running)} step(s) (SIGKILL)")
        for handle in self._running.values():
            handle.kill()
        self._give_up_at = time.monotonic() + CONFIRM_SECONDS

    def _set(self, state: StepState, status: StepStatus) -> None:
        state.status = status
        if status not in (StepStatus.WAITING, StepStatus.RUNNING) and state.started is not None:
            state.finished = state.finished or time.monotonic()
        self._observer.changed(state)
