"""The program's two runtime measures (infra/program_runtime.py) keep what Pulumi relies on: the
end of the program still waits for every output and still fails on a failed one; collection
resumes as it was, whatever the composition does."""

from __future__ import annotations

import asyncio
import gc
import random
from collections import Counter, deque
from collections.abc import Iterator
from typing import Any

import pulumi
import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs, Mocks
from pulumi.runtime.settings import SETTINGS

import infra.program
from infra.program_runtime import YOUNG_GENERATION, OutputTracker, composing, track_outputs


class NoResources(Mocks):
    """The runs below register nothing and call nothing."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict]:
        raise AssertionError(f"unexpected resource {args.typ}")

    def call(self, args: MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        raise AssertionError(f"unexpected invoke {args.token}")


@pytest.fixture
def mocked_runtime() -> Iterator[None]:
    pulumi.runtime.set_mocks(NoResources(), project="p", stack="s", preview=False)
    yield


@pytest.fixture
def unfreeze() -> Iterator[None]:
    """What a test freezes goes back to the collector, with the thresholds it had: pytest runs on
    after the test."""
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_tracker_holds_what_the_runtime_deque_holds_after_any_sequence_of_operations() -> None:
    """Same items with the same multiplicity, the same length and the same errors as a deque
    under the operations pulumi applies (append, remove, popleft, clear, len)."""
    rng = random.Random(11)
    items = [object() for _ in range(6)]
    for _ in range(200):
        reference: deque[object] = deque()
        tracker = OutputTracker()
        for _ in range(60):
            operation = rng.choice(["append", "append", "append", "remove", "popleft", "clear"])
            item = rng.choice(items)
            if operation == "append":
                reference.append(item)
                tracker.append(item)
            elif operation == "remove":
                if item in reference:
                    reference.remove(item)
                    tracker.remove(item)
                else:
                    with pytest.raises(ValueError):
                        tracker.remove(item)
            elif operation == "popleft":
                if reference:
                    # Which of two copies of an item comes first is not part of the contract:
                    # the runtime only waits until none is left (upstream keeps a set).
                    taken = tracker.popleft()
                    reference.remove(taken)
                else:
                    with pytest.raises(IndexError):
                        tracker.popleft()
            else:
                reference.clear()
                tracker.clear()
            assert len(tracker) == len(reference)
            assert Counter(tracker) == Counter(reference)


def test_tracker_keeps_first_in_first_out_for_distinct_items() -> None:
    tracker = OutputTracker(["a", "b"])
    tracker.append("c")
    tracker.remove("b")
    assert [tracker.popleft(), tracker.popleft()] == ["a", "c"]
    with pytest.raises(IndexError):
        tracker.popleft()


@pytest.mark.usefixtures("mocked_runtime")
def test_end_of_program_waits_for_outputs_tracked_by_the_tracker() -> None:
    """An output nothing awaits still resolves before the run ends: the runtime's final wait
    reads the tracker the program installed."""
    seen: list[int] = []
    installed: list[OutputTracker | None] = []

    @pulumi.runtime.test
    def program() -> None:
        installed.append(track_outputs())

        async def later() -> int:
            for _ in range(20):
                await asyncio.sleep(0)
            return 3

        pulumi.Output.from_input(later()).apply(seen.append)

    program()
    assert seen == [3]
    (tracker,) = installed
    assert isinstance(tracker, OutputTracker)
    assert len(tracker) == 0


@pytest.mark.usefixtures("mocked_runtime")
def test_a_failed_output_still_fails_the_run() -> None:
    def fail(value: int) -> int:
        raise RuntimeError(f"apply failed on {value}")

    @pulumi.runtime.test
    def program() -> None:
        track_outputs()
        pulumi.Output.from_input(7).apply(fail)

    with pytest.raises(RuntimeError, match="apply failed on 7"):
        program()


@pytest.mark.usefixtures("mocked_runtime")
def test_outputs_created_before_the_tracker_are_carried_over() -> None:
    carried: list[int] = []

    @pulumi.runtime.test
    def program() -> None:
        pulumi.Output.from_input(1).apply(lambda v: v)
        before = len(SETTINGS.outputs)
        tracker = track_outputs()
        assert tracker is not None
        carried.append(len(tracker) - before)
        assert track_outputs() is tracker  # installing twice keeps the one tracker

    program()
    assert carried == [0]


@pytest.mark.usefixtures("unfreeze")
def test_collection_is_paused_while_composing_and_resumes_after_a_failure() -> None:
    assert gc.isenabled()
    with pytest.raises(ValueError, match="broken definition"), composing():
        assert not gc.isenabled()
        raise ValueError("broken definition")
    assert gc.isenabled()


@pytest.mark.usefixtures("unfreeze")
def test_the_composed_graph_is_frozen_out_of_later_collections() -> None:
    graph: list[dict[str, Any]] = []
    with composing():
        graph.extend({"resource": i} for i in range(100))
    assert gc.get_freeze_count() >= len(graph)
    assert gc.isenabled()
    assert gc.get_threshold()[0] == YOUNG_GENERATION


@pytest.mark.usefixtures("unfreeze")
def test_collection_stays_off_when_it_was_off() -> None:
    gc.disable()
    try:
        with composing():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.usefixtures("mocked_runtime", "unfreeze")
def test_program_composes_with_the_tracker_installed_and_collection_paused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    observed: list[tuple[str, bool]] = []

    def compose() -> None:
        observed.append((type(SETTINGS.outputs).__name__, gc.isenabled()))

    monkeypatch.setattr(infra.program, "compose", compose)
    pulumi.runtime.test(infra.program.main)()
    assert observed == [("OutputTracker", False)]
    assert gc.isenabled()
