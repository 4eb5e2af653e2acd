"""Runs a pipeline's steps in DAG order, independent branches in parallel up to `jobs`.

One thread per running step waits for it and streams its lines into a queue; the calling thread
owns all state, the log files and the console, so no locks are needed. On a failure no new step
starts; running steps finish (or are cancelled with `fail_fast`). Ctrl-C cancels running steps and
removes what the executor started.
"""

from __future__ import annotations

import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import IO

from infra.runner.executor import CANCELLED_EXIT, Executor, RunningStep
from infra.runner.plan import RunLayout, StepPlan

TAIL_LINES = 20


class StepStatus(StrEnum):
    """Life cycle of a step in a local run."""

    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    """Not started because the run stopped (an earlier failure or Ctrl-C)."""


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

    @property
    def duration(self) -> float | None:
        """Seconds the step ran (so far, while running)."""
        if self.started is None:
            return None
        return (self.finished or time.monotonic()) - self.started


@dataclass(frozen=True)
class _Line:
    step: str
    text: str


@dataclass(frozen=True)
class _Done:
    step: str
    exit_code: int | None
    error: str = ""


class Observer:
    """What the scheduler tells the outside world (console, progress); default: nothing."""

    def line(self, step: str, text: str) -> None:
        """One output line of a step."""

    def changed(self, state: StepState) -> None:
        """A step changed status."""

    def tick(self, states: Mapping[str, StepState]) -> None:
        """Called a few times per second while steps run (progress display)."""


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
    ) -> None:
        self.states = {plan.name: StepState(plan) for plan in plans}
        self._order = [plan.name for plan in plans]
        self._upstream = upstream
        self._executor = executor
        self._layout = layout
        self._jobs = max(1, jobs)
        self._fail_fast = fail_fast
        self._observer = observer or Observer()
        self._events: queue.Queue[_Line | _Done] = queue.Queue()
        self._running: dict[str, RunningStep] = {}
        self._logs: dict[str, IO[str]] = {}
        self._stopping = False
        self.interrupted = False

    def run(self) -> dict[str, StepState]:
        """Run until every step finished or the run stopped; returns the final states."""
        try:
            while True:
                if not self._stopping:
                    self._start_ready()
                if not self._running:
                    break
                self._pump(timeout=0.25)
        except KeyboardInterrupt:
            self.interrupted = True
            self._cancel_all("cancelled by Ctrl-C")
            self._executor.cleanup()
        finally:
            for handle in self._logs.values():
                handle.close()
        for state in self.states.values():
            if state.status is StepStatus.WAITING:
                self._set(state, StepStatus.SKIPPED)
        return self.states

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
        self._logs[plan.name] = log_file.open("w", encoding="utf-8")
        try:
            handle = self._executor.start(plan)
        except Exception as exc:  # an engine or OS error is this step's failure, reported as such
            self._fail(state, None, f"could not start: {exc}")
            return
        self._running[plan.name] = handle
        self._set(state, StepStatus.RUNNING)
        threading.Thread(
            target=self._watch, args=(plan.name, handle), name=f"step-{plan.name}", daemon=True
        ).start()

    def _watch(self, name: str, handle: RunningStep) -> None:
        """Worker thread: stream lines, then report the exit code (or the error)."""
        try:
            code = handle.wait(lambda text: self._events.put(_Line(name, text)))
            self._events.put(_Done(name, code))
        except Exception as exc:
            self._events.put(_Done(name, None, f"lost track of the step: {exc}"))

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
            if isinstance(event, _Done):
                break
        self._observer.tick(self.states)

    def _handle(self, event: _Line | _Done) -> None:
        state = self.states[event.step]
        if isinstance(event, _Line):
            state.tail.append(event.text)
            if log := self._logs.get(event.step):
                log.write(event.text + "\n")
                log.flush()
            self._observer.line(event.step, event.text)
            return
        self._running.pop(event.step, None)
        if state.status is StepStatus.CANCELLED:
            return
        if event.exit_code == 0:
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
            self._cancel_all(f"cancelled: step {state.plan.name!r} failed (--fail-fast)")

    def _cancel_all(self, message: str) -> None:
        self._stopping = True
        for name, handle in list(self._running.items()):
            state = self.states[name]
            state.message = message
            self._set(state, StepStatus.CANCELLED)
            handle.cancel()
        self._running.clear()

    def _set(self, state: StepState, status: StepStatus) -> None:
        state.status = status
        if status not in (StepStatus.WAITING, StepStatus.RUNNING) and state.started is not None:
            state.finished = state.finished or time.monotonic()
        self._observer.changed(state)
