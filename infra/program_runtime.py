"""Three costs the Pulumi Python runtime puts on every resource: two kept linear in the program's
size, one made cheaper.

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

- **Stack traces.** At every registration pulumi 3.223 records where the resource was created
  (``_get_stack_trace`` in ``pulumi.runtime.resource``: the frames below the resource's own
  constructor, sent to the engine as the request's stack trace and source position). It takes
  them with ``traceback.extract_stack``, which also reads every frame's source line and stats
  every file on the stack through ``linecache``, and converts each file name to a URI again:
  about 0.4 ms per resource for some 24 frames, 1.2 ms per pipeline (three resources). No
  setting turns the capture off. :func:`cheap_stack_traces` puts in its place a walk of the
  same frames that builds the same message (file URIs cached per file name), for the SDK
  version it was checked against only.

All three act on the interpreter that runs the program: the Pulumi language host (or the mocks
harness) starts one per run, and nothing else runs in it.
"""

from __future__ import annotations

import gc
import sys
from collections import OrderedDict, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import pulumi.runtime.resource as runtime_resource
from pulumi._version import _VERSION as PULUMI_VERSION
from pulumi.runtime.proto import source_pb2
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


STACK_TRACE_SDK_VERSIONS = frozenset({"3.223.0"})
"""Pulumi SDK versions whose ``_get_stack_trace`` :func:`stack_trace` was checked against (the
frames it keeps and the message it builds); any other keeps its own."""

SDK_STACK_TRACE = runtime_resource._get_stack_trace
"""The runtime's own, as imported (tests compare :func:`stack_trace` with it)."""


@cache
def _file_uri(filename: str) -> str | None:
    """`filename` as the runtime writes it in a source position; None where it writes none (an
    empty or relative name, e.g. ``<string>``)."""
    if filename == "":
        return None
    try:
        return Path(filename).as_uri()
    except ValueError:
        return None


def _frame(frame: FrameType) -> source_pb2.StackFrame:
    uri = _file_uri(frame.f_code.co_filename)
    line = frame.f_lineno
    if uri is None or line is None:
        return source_pb2.StackFrame()
    return source_pb2.StackFrame(pc=source_pb2.SourcePosition(uri=uri, line=line))


def stack_trace() -> source_pb2.StackTrace:
    """What pulumi 3.223's ``_get_stack_trace`` returns, without ``traceback``: the frames below
    the third ``__init__`` up the stack (Resource, Custom/ComponentResource, the concrete class),
    innermost first, each with its file URI and line; an empty trace when there is no frame
    below it or fewer than three ``__init__`` frames."""
    frame: FrameType | None = sys._getframe(1)
    inits = 0
    while frame is not None:
        if frame.f_code.co_name == "__init__":
            inits += 1
            if inits == 3:
                break
        frame = frame.f_back
    if frame is None or frame.f_back is None:
        return source_pb2.StackTrace()
    frames = []
    below: FrameType | None = frame.f_back
    while below is not None:
        frames.append(_frame(below))
        below = below.f_back
    return source_pb2.StackTrace(frames=frames)


def cheap_stack_traces() -> bool:
    """Put :func:`stack_trace` in the place of the runtime's ``_get_stack_trace``, for the SDK
    versions in :data:`STACK_TRACE_SDK_VERSIONS`; whether it is in place."""
    if PULUMI_VERSION not in STACK_TRACE_SDK_VERSIONS:
        return False
    runtime_resource._get_stack_trace = stack_trace
    return True
