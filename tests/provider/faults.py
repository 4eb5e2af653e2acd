"""Call counting and fault injection around any backend (the port), for the provider tests.

:class:`FaultyBackend` wraps a backend: it counts every port call by operation (read or write)
and fires the faults a :class:`FaultPlan` holds (fail the Nth write, or the Nth call of a named
operation, before the call or after it took effect), or holds a call until several provider
hosts reach it (a rendezvous, to force a race). The plan is a small SQLite file of its own, so
the test process arms what the provider host process fires.

The provider host gets the wrapper through :class:`FaultyEndpointProvider` and
:class:`FaultyScheduleProvider`: the real providers with only backend creation wrapped; they
are pickled by reference to this module, which the host imports from the repository (see
:class:`tests.provider.grpc_host.ProviderHost`).
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from infra.provider.port import (
    Backend,
    BackendError,
    EndpointRecord,
    Owner,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    WorkspaceRef,
)
from infra.provider.provider import PipelineEndpointProvider, PipelineScheduleProvider

PLAN_ENV = "AMLPIPE_TEST_FAULT_PLAN"
"""Environment variable of the provider host naming the plan file (unset: no wrapper)."""

WRITES = frozenset(
    {
        "publish_pipeline",
        "disable_pipeline",
        "create_endpoint",
        "add_default_version",
        "set_default_version",
        "archive_endpoint",
        "reactivate_endpoint",
        "create_schedule",
        "update_schedule",
    }
)
READS = frozenset({"find_published", "get_endpoint", "get_schedule", "find_schedules"})

Timing = Literal["before", "after"]
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (op TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (op, kind));
CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY, op TEXT NOT NULL,
    countdown INTEGER NOT NULL, timing TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meetings (op TEXT PRIMARY KEY, parties INTEGER NOT NULL,
    arrived INTEGER NOT NULL);
"""


class InjectedFault(BackendError):
    """A failure armed by a test."""


@dataclass(frozen=True)
class CallCounts:
    """Calls made to the backend, by operation, split into reads and writes."""

    reads: dict[str, int]
    writes: dict[str, int]

    @property
    def total_writes(self) -> int:
        """All write calls."""
        return sum(self.writes.values())

    @property
    def total_reads(self) -> int:
        """All read calls."""
        return sum(self.reads.values())


class FaultPlan:
    """Counters, armed faults and rendezvous, in a SQLite file shared across processes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.executescript(_SCHEMA)
        finally:
            conn.close()

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def arm(self, op: str = "*", nth: int = 1, timing: Timing = "before") -> None:
        """Make the `nth` write call of `op` ('*' = any write) fail, before or after it applies."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO faults (op, countdown, timing) VALUES (?, ?, ?)", (op, nth, timing)
            )

    def meet(self, op: str, parties: int) -> None:
        """Hold every call of `op` until `parties` calls (in any processes) have reached it."""
        with self._connect() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meetings (op, parties, arrived) VALUES (?, ?, 0)",
                (op, parties),
            )

    def clear(self) -> None:
        """Disarm every fault and rendezvous."""
        with self._connect() as conn:
            conn.execute("DELETE FROM faults")
            conn.execute("DELETE FROM meetings")

    def counts(self) -> CallCounts:
        """Calls made so far."""
        reads: dict[str, int] = {}
        writes: dict[str, int] = {}
        with self._connect() as conn:
            for op, kind, n in conn.execute("SELECT op, kind, n FROM calls"):
                (writes if kind == "write" else reads)[op] = n
        return CallCounts(reads, writes)

    def reset_counts(self) -> None:
        """Start counting from zero."""
        with self._connect() as conn:
            conn.execute("DELETE FROM calls")

    def gate(self, op: str, kind: str) -> Timing | None:
        """Count a call, wait at its rendezvous; the timing of a fault firing on it, if any."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO calls (op, kind, n) VALUES (?, ?, 1) "
                "ON CONFLICT (op, kind) DO UPDATE SET n = n + 1",
                (op, kind),
            )
            met = conn.execute("UPDATE meetings SET arrived = arrived + 1 WHERE op = ?", (op,))
            waiting = met.rowcount > 0
            fired: Timing | None = None
            if kind == "write":
                fired = self._fire(conn, op)
        if waiting:
            self._wait(op)
        return fired

    @staticmethod
    def _fire(conn: sqlite3.Connection, op: str) -> Timing | None:
        for fault_id, countdown, timing in conn.execute(
            "SELECT id, countdown, timing FROM faults WHERE op IN (?, '*') ORDER BY id", (op,)
        ).fetchall():
            if countdown <= 1:
                conn.execute("DELETE FROM faults WHERE id = ?", (fault_id,))
                return "after" if timing == "after" else "before"
            conn.execute("UPDATE faults SET countdown = ? WHERE id = ?", (countdown - 1, fault_id))
        return None

    def _wait(self, op: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with self._connect() as conn:
                row = conn.execute(
                    "SELECT parties, arrived FROM meetings WHERE op = ?", (op,)
                ).fetchone()
            if row is None or row[1] >= row[0]:
                return
            time.sleep(0.01)
        raise InjectedFault(f"rendezvous at {op} timed out")


class FaultyBackend:
    """Any backend, with every call counted and gated by a :class:`FaultPlan`."""

    def __init__(self, inner: Backend, plan: FaultPlan) -> None:
        self.inner = inner
        self.plan = plan

    def __str__(self) -> str:
        return str(self.inner)

    def _read(self, op: str, call: Callable[[], T]) -> T:
        self.plan.gate(op, "read")
        return call()

    def _write(self, op: str, call: Callable[[], T]) -> T:
        fault = self.plan.gate(op, "write")
        if fault == "before":
            raise InjectedFault(f"injected fault before {op}")
        result = call()
        if fault == "after":
            raise InjectedFault(f"injected fault after {op} (the write took effect)")
        return result

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Counted, gated."""
        return self._write("publish_pipeline", lambda: self.inner.publish_pipeline(build))

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Counted."""
        return self._read("find_published", lambda: self.inner.find_published(name))

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Counted, gated."""
        self._write("disable_pipeline", lambda: self.inner.disable_pipeline(pipeline_id))

    def create_endpoint(
        self, name: str, description: str, pipeline_id: str, owner: Owner
    ) -> EndpointRecord:
        """Counted, gated."""
        return self._write(
            "create_endpoint",
            lambda: self.inner.create_endpoint(name, description, pipeline_id, owner),
        )

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """Counted."""
        return self._read("get_endpoint", lambda: self.inner.get_endpoint(endpoint_id, name))

    def add_default_version(self, endpoint_id: str, pipeline_id: str) -> EndpointRecord:
        """Counted, gated."""
        return self._write(
            "add_default_version", lambda: self.inner.add_default_version(endpoint_id, pipeline_id)
        )

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """Counted, gated."""
        return self._write(
            "set_default_version", lambda: self.inner.set_default_version(endpoint_id, version)
        )

    def archive_endpoint(self, endpoint_id: str) -> None:
        """Counted, gated."""
        self._write("archive_endpoint", lambda: self.inner.archive_endpoint(endpoint_id))

    def reactivate_endpoint(self, endpoint_id: str, name: str) -> EndpointRecord:
        """Counted, gated."""
        return self._write(
            "reactivate_endpoint", lambda: self.inner.reactivate_endpoint(endpoint_id, name)
        )

    def create_schedule(
        self,
        name: str,
        endpoint_id: str,
        experiment: str,
        settings: ScheduleSettings,
        owner: Owner,
    ) -> ScheduleRecord:
        """Counted, gated."""
        return self._write(
            "create_schedule",
            lambda: self.inner.create_schedule(name, endpoint_id, experiment, settings, owner),
        )

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """Counted, gated."""
        return self._write(
            "update_schedule", lambda: self.inner.update_schedule(schedule_id, settings)
        )

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """Counted."""
        return self._read("get_schedule", lambda: self.inner.get_schedule(schedule_id))

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Counted."""
        return self._read("find_schedules", lambda: self.inner.find_schedules(endpoint_id, name))


def _wrapped(inner: Backend) -> Backend:
    path = os.environ.get(PLAN_ENV)
    return FaultyBackend(inner, FaultPlan(Path(path))) if path else inner


class FaultyEndpointProvider(PipelineEndpointProvider):
    """The real endpoint provider on a wrapped backend."""

    def _make_backend(self, workspace: WorkspaceRef) -> Backend:
        return _wrapped(super()._make_backend(workspace))


class FaultyScheduleProvider(PipelineScheduleProvider):
    """The real schedule provider on a wrapped backend."""

    def _make_backend(self, workspace: WorkspaceRef) -> Backend:
        return _wrapped(super()._make_backend(workspace))
