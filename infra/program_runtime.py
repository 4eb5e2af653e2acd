"""Two costs the Pulumi Python runtime puts on every resource, kept linear in the program's size.

Measured with bench/program_eval.py (the samples cloned to 100 and 500 pipelines, three resources
per pipeline, under the recording mocks), before these two changes:

- **Output tracking.** pulumi 3.223 records every `Output` it creates in a `deque`
  (``SETTINGS.outputs``) so that the end of the program can wait for all of them, and removes
  each one with ``deque.remove`` once it resolves: a scan from the left past every output still
  pending. A program registers all of its resources before the first one resolves, so the scans
  grow with the program: at 500 pipelines (about 54,000 outputs) they took 45 % of the CPU
  time. pulumi/pulumi#22946 replaced the deque by a set upstream; that release needs
  ``packaging>=26``, which the pinned azureml-core excludes (docs: ENVIRONMENT.md).
  :class:`OutputTracker` keeps what the runtime relies on (every item with its multiplicity,
  ``ValueError`` for a missing one, first in first out among distinct items) with constant-time
  removal, and :func:`track_outputs` puts it in place.
- **Garbage collection.** Every output brings futures, tasks, coroutines and contexts with it
  (about 2,000 tracked objects per pipeline once the program has composed its resources), and
  nearly all of them live until the program ends. Each full collection rescans all of them, and
  the collector's default thresholds run one every time the heap has grown by a quarter: a third
  of the CPU time at 500 pipelines, for almost no garbage (collection turned off entirely raised
  peak memory by 4 %). :func:`composing` pauses automatic collection while the program builds
  its resource graph, then moves everything alive into the permanent generation (`gc.freeze`)
  and resumes with a young generation of :data:`YOUNG_GENERATION` objects, so that what the
  runtime allocates while the resources resolve (most of it kept as well) is scanned about
  twice rather than at every full collection. Frozen objects are still freed by reference
  counting, and cyclic garbage is still collected.

Both act on the interpreter that runs the program: the Pulumi language host (or the mocks
harness) starts one per run, and nothing else runs in it.
"""

from __future__ import annotations

import gc
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from pulumi.runtime.settings import SETTINGS


class OutputTracker:
    """The runtime's pending outputs: the operations pulumi 3.223 applies to its deque
    (``append``, ``remove``, ``popleft``, ``clear``, ``len``), each in constant time.

    An ordered multiset: the same future may be tracked twice (two `Output`s can share one),
    and is then removed twice, as from the deque. Callers hold ``SETTINGS.lock``, as for the
    deque; the tracker adds no locking of its own.
    """

    def __init__(self, items: Iterable[Any] = ()) -> None:
        self._counts: OrderedDict[Any, int] = OrderedDict()
        self._size = 0
        for item in items:
            self.append(item)

    def append(self, item: Any) -> None:
        """Track `item` (again, if it is tracked already), last in order."""
        self._counts[item] = self._counts.get(item, 0) + 1
        self._size += 1

    def remove(self, item: Any) -> None:
        """Forget one tracking of `item`; ValueError when it is not tracked (the runtime
        expects that when the end-of-program wait took the item first)."""
        count = self._counts.get(item)
        if count is None:
            raise ValueError(f"{item!r} is not tracked")
        self._drop(item, count)

    def popleft(self) -> Any:
        """Take the first tracked item; IndexError when there is none."""
        if not self._counts:
            raise IndexError("pop from an empty OutputTracker")
        item, count = next(iter(self._counts.items()))
        self._drop(item, count)
        return item

    def clear(self) -> None:
        self._counts.clear()
        self._size = 0

    def _drop(self, item: Any, count: int) -> None:
        if count == 1:
            del self._counts[item]
        else:
            self._counts[item] = count - 1
        self._size -= 1

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        for item, count in self._counts.items():
            for _ in range(count):
                yield item


def track_outputs() -> OutputTracker | None:
    """Replace the runtime's deque of pending outputs by an :class:`OutputTracker` holding the
    same items; call it at the start of the program, before resources are registered.

    The runtime reads ``SETTINGS.outputs`` from a context variable, and the program runs
    synchronously inside the task that afterwards waits for the outputs, so both see the
    tracker. A runtime that keeps them in anything but a deque (a set since pulumi/pulumi#22946)
    is left as it is: None."""
    current = SETTINGS.outputs
    if isinstance(current, OutputTracker):
        return current
    if not isinstance(current, deque):
        return None
    with SETTINGS.lock:
        tracker = OutputTracker(current)
        current.clear()
        SETTINGS.outputs = tracker
    return tracker


YOUNG_GENERATION = 20_000
"""Allocations between two collections of the youngest generation once the program has composed
(the interpreter's default is 700). The two older generations are collected every 20th and 10th
time their younger one is."""


@contextmanager
def composing() -> Iterator[None]:
    """Automatic garbage collection paused while the program builds its resources; on the way
    out, what is alive (the resource graph, which lives until the program ends) is frozen out of
    later collections, and collection resumes as it was with :data:`YOUNG_GENERATION`."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(YOUNG_GENERATION, 20, 10)
        if was_enabled:
            gc.enable()
