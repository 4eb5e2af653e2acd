"""Ctrl-C, SIGTERM and SIGHUP during `amlpipe run`.

Before a run owns its folder, the first signal raises KeyboardInterrupt: nothing has started, so
nothing needs cleaning up. From then on signals are only counted (:meth:`StopSignals.defer`) and
the scheduler acts on them between events: the first stops the run gracefully (SIGTERM, then
SIGKILL after the grace period), a second one hurries the clean-up (SIGKILL now) but can never
skip it, because no exception ever interrupts the clean-up or the writing of `summary.json`.
"""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

HANDLED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class StopSignals:
    """Counts stop signals; raises KeyboardInterrupt on the first one until :meth:`defer`."""

    def __init__(self) -> None:
        self.count = 0
        self.names: list[str] = []
        self._raise = True
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        """Handle SIGINT, SIGTERM and SIGHUP (main thread only)."""
        for signum in HANDLED:
            self._previous[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put back the handlers :meth:`install` replaced."""
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()

    def defer(self) -> None:
        """From now on only count signals: the caller polls :attr:`count`."""
        self._raise = False

    def note(self, signum: int) -> None:
        """Record a stop request (also used when KeyboardInterrupt arrives another way)."""
        self.count += 1
        self.names.append(signal.Signals(signum).name)

    @property
    def hurried(self) -> bool:
        """A second stop request: end everything now."""
        return self.count >= 2

    @property
    def reason(self) -> str:
        """`SIGINT`, or `SIGTERM, then SIGINT` when a second signal hurried the stop."""
        return ", then ".join(self.names[:2]) or "a stop request"

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.note(signum)
        if self._raise and self.count == 1:
            raise KeyboardInterrupt
