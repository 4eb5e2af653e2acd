"""What a local run shows: step log lines with a step prefix, status changes, a live progress line
(done / running / waiting, elapsed) and the final table or failure report."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from infra.plaintext import PlainConsole, escape
from infra.runner.scheduler import Observer, StepState, StepStatus

if TYPE_CHECKING:  # rich loads only on a terminal (or for what only rich prints right)
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text

_COLOURS = ["cyan", "magenta", "green", "yellow", "blue", "bright_cyan", "bright_magenta"]
_STATUS_STYLE = {
    StepStatus.SUCCEEDED: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.CANCELLED: "yellow",
    StepStatus.SKIPPED: "dim",
    StepStatus.RUNNING: "cyan",
    StepStatus.WAITING: "dim",
}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}s"


class ConsoleObserver(Observer):
    """Prints to a rich console; the progress line is live only on a terminal."""

    def __init__(self, console: Console | PlainConsole, step_names: list[str]) -> None:
        self._console = console
        self._started = time.monotonic()
        width = max(len(name) for name in step_names)
        self._prefix = {
            name: f"[{_COLOURS[i % len(_COLOURS)]}]{name:<{width}}[/] │ "
            for i, name in enumerate(step_names)
        }
        self._live: Live | None = None
        if not isinstance(console, PlainConsole) and console.is_terminal:
            from rich.live import Live
            from rich.text import Text

            self._live = Live(Text(""), console=console, transient=True, refresh_per_second=4)
            self._live.start()

    def line(self, step: str, text: str) -> None:
        self._console.print(self._prefix[step] + escape(text), highlight=False, soft_wrap=True)

    def hidden(self, step: str, count: int, log_file: Path) -> None:
        self._console.print(
            self._prefix[step] + f"[dim]… {count:,} more lines only in {escape(str(log_file))}[/]",
            highlight=False,
            soft_wrap=True,
        )

    def stopping(self, message: str) -> None:
        self._console.print(message, style="bold yellow")

    def changed(self, state: StepState) -> None:
        name, status = state.plan.name, state.status
        if status is StepStatus.RUNNING:
            self._console.print(f"▶ {name} started", style="bold")
        elif status is not StepStatus.WAITING:
            detail = f" in {_seconds(state.duration)}" if state.started is not None else ""
            code = f" (exit {state.exit_code})" if state.exit_code not in (None, 0) else ""
            self._console.print(
                f"■ {name} {status.value}{detail}{code}", style=_STATUS_STYLE[status]
            )

    def tick(self, states: Mapping[str, StepState]) -> None:
        if self._live is not None:
            self._live.update(self.progress(states))

    def progress(self, states: Mapping[str, StepState]) -> Text:
        """`done 1/3 · running train 4.2s · waiting 1 · elapsed 6.0s`."""
        from rich.text import Text

        finished = [s for s in states.values() if s.status is StepStatus.SUCCEEDED]
        running = [s for s in states.values() if s.status is StepStatus.RUNNING]
        waiting = [s for s in states.values() if s.status is StepStatus.WAITING]
        running_text = ", ".join(f"{s.plan.name} {_seconds(s.duration)}" for s in running) or "-"
        return Text(
            f"done {len(finished)}/{len(states)} · running {running_text} · "
            f"waiting {len(waiting)} · elapsed {time.monotonic() - self._started:.1f}s",
            style="bold",
        )

    def stop(self) -> None:
        """End the live display (before the final report)."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def print_report(
    console: Console | PlainConsole, states: Mapping[str, StepState], run_dir: str
) -> None:
    """Final table; for a failed step also its exit code and last log lines."""
    headers = ("step", "status", "exit", "duration")
    rows = [
        [
            state.plan.name,
            state.status.value,
            "-" if state.exit_code is None else str(state.exit_code),
            _seconds(state.duration),
        ]
        for state in states.values()
    ]
    if not (isinstance(console, PlainConsole) and console.print_table(headers, rows)):
        from rich.table import Table
        from rich.text import Text

        table = Table(*headers)
        for state, row in zip(states.values(), rows, strict=True):
            table.add_row(row[0], Text(row[1], style=_STATUS_STYLE[state.status]), *row[2:])
        (console.rich() if isinstance(console, PlainConsole) else console).print(table)
    for state in states.values():
        if state.status is StepStatus.FAILED:
            console.print(f"[bold red]step {state.plan.name} failed:[/] {escape(state.message)}")
            if state.tail:
                console.print(f"last {len(state.tail)} log lines of {state.plan.name}:")
                for line in state.tail:
                    console.print("  " + escape(line), highlight=False, soft_wrap=True)
    console.print(f"run folder: {run_dir}")
