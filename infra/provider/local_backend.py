"""A SQLite-backed stand-in for Azure ML v1 pipelines, endpoints and schedules.

It follows the service's rules (see :mod:`infra.provider.port`) so that tests exercise the rules
Azure enforces, and a local stack can be deployed without Azure. It also

- counts every call by operation and kind (read/write), so tests and the benchmark can check that
  a no-op deploy writes nothing;
- injects faults on demand (fail the Nth write, or the Nth call of a named operation, before or
  after the write takes effect), so tests can interrupt create/update at every step.

Counters and faults live in the same file, so a test process sees (and arms) what the provider
host process does. The provider host may run operations on several threads: every call opens
its own connection and writes inside one ``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from infra.definitions.model import Recurrence
from infra.provider.port import (
    BackendError,
    EndpointRecord,
    EndpointVersion,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
    WorkspaceRef,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS published (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, version_tag TEXT NOT NULL,
    status TEXT NOT NULL, spec_json TEXT NOT NULL, images_json TEXT NOT NULL,
    seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS endpoints (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    default_version TEXT NOT NULL, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS endpoint_versions (
    endpoint_id TEXT NOT NULL, version INTEGER NOT NULL, pipeline_id TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, version));
CREATE TABLE IF NOT EXISTS schedules (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, endpoint_id TEXT NOT NULL,
    experiment TEXT NOT NULL, recurrence_json TEXT NOT NULL, description TEXT NOT NULL,
    parameters_json TEXT NOT NULL, status TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS calls (op TEXT NOT NULL, kind TEXT NOT NULL, n INTEGER NOT NULL,
    PRIMARY KEY (op, kind));
CREATE TABLE IF NOT EXISTS faults (id INTEGER PRIMARY KEY, op TEXT NOT NULL,
    countdown INTEGER NOT NULL, timing TEXT NOT NULL);
"""

T = TypeVar("T")
Timing = Literal["before", "after"]


class InjectedFault(BackendError):
    """A failure armed by a test (see :meth:`LocalStore.inject_fault`)."""


@dataclass(frozen=True)
class CallCounts:
    """Calls made to the store, by operation, split into reads and writes."""

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


class LocalStore:
    """The SQLite file: schema, counters and fault injection (shared by every workspace in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._schema_ready = False
        self._schema_lock = threading.Lock()

    def _ensure_schema(self) -> None:
        # Once per store object (the provider host keeps one), not at every call.
        with self._schema_lock:
            if self._schema_ready:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            try:
                conn.executescript(_SCHEMA)
            finally:
                conn.close()
            self._schema_ready = True

    @contextmanager
    def connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection in one transaction, committed on success, rolled back on error."""
        self._ensure_schema()
        conn = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def inject_fault(self, op: str = "*", nth: int = 1, timing: Timing = "before") -> None:
        """Make the `nth` write call of `op` ('*' = any write) fail, before or after it applies."""
        with self.connect(immediate=True) as conn:
            conn.execute(
                "INSERT INTO faults (op, countdown, timing) VALUES (?, ?, ?)", (op, nth, timing)
            )

    def pending_faults(self) -> int:
        """Faults armed but not fired yet."""
        with self.connect() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM faults").fetchone()[0])

    def clear_faults(self) -> None:
        """Disarm every fault."""
        with self.connect(immediate=True) as conn:
            conn.execute("DELETE FROM faults")

    def counts(self) -> CallCounts:
        """Calls made so far."""
        reads: dict[str, int] = {}
        writes: dict[str, int] = {}
        with self.connect() as conn:
            for op, kind, n in conn.execute("SELECT op, kind, n FROM calls"):
                (writes if kind == "write" else reads)[op] = n
        return CallCounts(reads, writes)

    def reset_counts(self) -> None:
        """Start counting from zero."""
        with self.connect(immediate=True) as conn:
            conn.execute("DELETE FROM calls")

    def gate(self, op: str, kind: str) -> Timing | None:
        """Count a call; return the timing of a fault that fires on it (None when none fires)."""
        with self.connect(immediate=True) as conn:
            conn.execute(
                "INSERT INTO calls (op, kind, n) VALUES (?, ?, 1) "
                "ON CONFLICT (op, kind) DO UPDATE SET n = n + 1",
                (op, kind),
            )
            if kind != "write":
                return None
            for fault_id, countdown, timing in conn.execute(
                "SELECT id, countdown, timing FROM faults WHERE op IN (?, '*') ORDER BY id", (op,)
            ).fetchall():
                if countdown <= 1:
                    conn.execute("DELETE FROM faults WHERE id = ?", (fault_id,))
                    return "after" if timing == "after" else "before"
                conn.execute(
                    "UPDATE faults SET countdown = ? WHERE id = ?", (countdown - 1, fault_id)
                )
        return None


class LocalBackend:
    """The backend port on a :class:`LocalStore`, for one workspace."""

    def __init__(self, store: LocalStore, workspace: WorkspaceRef) -> None:
        self.store = store
        self.ws = workspace.key()

    # -- plumbing -----------------------------------------------------------------------------

    def _read(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        self.store.gate(op, "read")
        with self.store.connect() as conn:
            return fn(conn)

    def _write(self, op: str, fn: Callable[[sqlite3.Connection], T]) -> T:
        fault = self.store.gate(op, "write")
        if fault == "before":
            raise InjectedFault(f"injected fault before {op}")
        with self.store.connect(immediate=True) as conn:
            result = fn(conn)
        if fault == "after":
            raise InjectedFault(f"injected fault after {op} (the write took effect)")
        return result

    def _rest_url(self, endpoint_id: str) -> str:
        return (
            f"http://localhost/local-aml/{self.ws}/PipelineRuns/PipelineEndpointSubmit/Id/"
            f"{endpoint_id}"
        )

    @staticmethod
    def _pipeline(conn: sqlite3.Connection, pipeline_id: str) -> PublishedPipelineRecord:
        row = conn.execute(
            "SELECT id, name, version_tag, status FROM published WHERE id = ?", (pipeline_id,)
        ).fetchone()
        if row is None:
            raise BackendError(f"published pipeline {pipeline_id} not found")
        return PublishedPipelineRecord(row[0], row[1], row[2], Status(row[3]))

    def _endpoint(self, conn: sqlite3.Connection, where: str, value: str) -> EndpointRecord | None:
        row = conn.execute(
            f"SELECT id, name, status, default_version FROM endpoints WHERE ws = ? AND {where} = ?",
            (self.ws, value),
        ).fetchone()
        if row is None:
            return None
        versions = tuple(
            EndpointVersion(str(version), self._pipeline(conn, pipeline_id))
            for version, pipeline_id in conn.execute(
                "SELECT version, pipeline_id FROM endpoint_versions WHERE endpoint_id = ? "
                "ORDER BY version",
                (row[0],),
            ).fetchall()
        )
        return EndpointRecord(
            row[0], row[1], Status(row[2]), row[3], self._rest_url(row[0]), versions
        )

    def _require_endpoint(self, conn: sqlite3.Connection, endpoint_id: str) -> EndpointRecord:
        found = self._endpoint(conn, "id", endpoint_id)
        if found is None:
            raise BackendError(f"pipeline endpoint {endpoint_id} not found")
        return found

    def _add_version(self, conn: sqlite3.Connection, endpoint_id: str, pipeline_id: str) -> str:
        self._pipeline(conn, pipeline_id)  # must exist, as on Azure
        row = conn.execute(
            "SELECT COALESCE(MAX(version) + 1, 0) FROM endpoint_versions WHERE endpoint_id = ?",
            (endpoint_id,),
        ).fetchone()
        version = int(row[0])
        conn.execute(
            "INSERT INTO endpoint_versions (endpoint_id, version, pipeline_id) VALUES (?, ?, ?)",
            (endpoint_id, version, pipeline_id),
        )
        return str(version)

    # -- published pipelines ------------------------------------------------------------------

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Store a new published pipeline (the build was checked against its hash already)."""
        new_id = str(uuid.uuid4())

        def run(conn: sqlite3.Connection) -> PublishedPipelineRecord:
            seq = conn.execute("SELECT COUNT(*) FROM published").fetchone()[0]
            conn.execute(
                "INSERT INTO published VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    self.ws,
                    build.name,
                    build.version_tag,
                    Status.ACTIVE.value,
                    build.spec.model_dump_json(),
                    json.dumps(build.images, sort_keys=True),
                    seq,
                ),
            )
            return self._pipeline(conn, new_id)

        return self._write("publish_pipeline", run)

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines with this name, oldest first."""

        def run(conn: sqlite3.Connection) -> list[PublishedPipelineRecord]:
            rows = conn.execute(
                "SELECT id FROM published WHERE ws = ? AND name = ? AND status = ? ORDER BY seq",
                (self.ws, name, Status.ACTIVE.value),
            ).fetchall()
            return [self._pipeline(conn, r[0]) for r in rows]

        return self._read("find_published", run)

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline."""

        def run(conn: sqlite3.Connection) -> None:
            self._pipeline(conn, pipeline_id)
            conn.execute(
                "UPDATE published SET status = ? WHERE id = ?", (Status.DISABLED.value, pipeline_id)
            )

        self._write("disable_pipeline", run)

    def published_spec_json(self, pipeline_id: str) -> str:
        """The spec stored with a published pipeline (tests check what was published)."""
        with self.store.connect() as conn:
            row = conn.execute("SELECT spec_json FROM published WHERE id = ?", (pipeline_id,))
            found = row.fetchone()
        if found is None:
            raise BackendError(f"published pipeline {pipeline_id} not found")
        return str(found[0])

    def published_images(self, pipeline_id: str) -> dict[str, str]:
        """The image references stored with a published pipeline."""
        with self.store.connect() as conn:
            found = conn.execute("SELECT images_json FROM published WHERE id = ?", (pipeline_id,))
            row = found.fetchone()
        if row is None:
            raise BackendError(f"published pipeline {pipeline_id} not found")
        images: dict[str, str] = json.loads(row[0])
        return images

    # -- endpoints ----------------------------------------------------------------------------

    def create_endpoint(self, name: str, description: str, pipeline_id: str) -> EndpointRecord:
        """Create an endpoint; fails like Azure when the name is taken."""
        new_id = str(uuid.uuid4())

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            if self._endpoint(conn, "name", name) is not None:
                raise BackendError(
                    f"PipelineEndpoint already exists with the name {name!r}. "
                    "Please choose a unique value."
                )
            conn.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?)",
                (new_id, self.ws, name, Status.ACTIVE.value, "0", description),
            )
            self._add_version(conn, new_id, pipeline_id)
            return self._require_endpoint(conn, new_id)

        return self._write("create_endpoint", run)

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """By id, or by name."""
        if endpoint_id is not None:
            return self._read("get_endpoint", lambda c: self._endpoint(c, "id", endpoint_id))
        if name is not None:
            return self._read("get_endpoint", lambda c: self._endpoint(c, "name", name))
        raise ValueError("get_endpoint needs an id or a name")

    def add_default_version(self, endpoint_id: str, pipeline_id: str) -> EndpointRecord:
        """Append a version and make it the default."""

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            self._require_endpoint(conn, endpoint_id)
            version = self._add_version(conn, endpoint_id, pipeline_id)
            conn.execute(
                "UPDATE endpoints SET default_version = ? WHERE id = ?", (version, endpoint_id)
            )
            return self._require_endpoint(conn, endpoint_id)

        return self._write("add_default_version", run)

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """Point the default at an existing version."""

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            endpoint = self._require_endpoint(conn, endpoint_id)
            endpoint.version(version)  # KeyError like Azure's ValueError when absent
            conn.execute(
                "UPDATE endpoints SET default_version = ? WHERE id = ?", (version, endpoint_id)
            )
            return self._require_endpoint(conn, endpoint_id)

        return self._write("set_default_version", run)

    def archive_endpoint(self, endpoint_id: str) -> None:
        """Rename to a random name and disable, as ``PipelineEndpoint.archive`` does."""

        def run(conn: sqlite3.Connection) -> None:
            self._require_endpoint(conn, endpoint_id)
            conn.execute(
                "UPDATE endpoints SET name = ?, status = ? WHERE id = ?",
                (str(uuid.uuid4()), Status.DISABLED.value, endpoint_id),
            )

        self._write("archive_endpoint", run)

    def reactivate_endpoint(self, endpoint_id: str, name: str) -> EndpointRecord:
        """Rename back and activate (``PipelineEndpoint.reactivate``)."""

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            other = self._endpoint(conn, "name", name)
            if other is not None and other.id != endpoint_id:
                raise BackendError(f"PipelineEndpoint already exists with the name {name!r}")
            conn.execute(
                "UPDATE endpoints SET name = ?, status = ? WHERE id = ?",
                (name, Status.ACTIVE.value, endpoint_id),
            )
            return self._require_endpoint(conn, endpoint_id)

        return self._write("reactivate_endpoint", run)

    # -- schedules ----------------------------------------------------------------------------

    @staticmethod
    def _schedule_row(row: tuple[str, ...]) -> ScheduleRecord:
        settings = ScheduleSettings(
            recurrence=Recurrence.model_validate_json(row[5]),
            description=row[6],
            parameters=json.loads(row[7]),
            status=Status(row[8]),
        )
        return ScheduleRecord(row[0], row[2], row[3], row[4], settings)

    def _schedule(self, conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
        row = conn.execute(
            "SELECT * FROM schedules WHERE id = ? AND ws = ?", (schedule_id, self.ws)
        ).fetchone()
        return None if row is None else self._schedule_row(row)

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, settings: ScheduleSettings
    ) -> ScheduleRecord:
        """Create a schedule; Azure creates it active, so a paused one costs a second write."""
        new_id = str(uuid.uuid4())

        def run(conn: sqlite3.Connection) -> ScheduleRecord:
            self._require_endpoint(conn, endpoint_id)
            conn.execute(
                "INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    self.ws,
                    name,
                    endpoint_id,
                    experiment,
                    settings.recurrence.model_dump_json(),
                    settings.description,
                    json.dumps(settings.parameters, sort_keys=True),
                    Status.ACTIVE.value,
                ),
            )
            found = self._schedule(conn, new_id)
            assert found is not None
            return found

        created = self._write("create_schedule", run)
        if settings.status is Status.DISABLED:
            return self.update_schedule(created.id, settings)
        return created

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """Change what a schedule does (never its name or target)."""

        def run(conn: sqlite3.Connection) -> ScheduleRecord:
            current = self._schedule(conn, schedule_id)
            if current is None:
                raise BackendError(f"schedule {schedule_id} not found")
            # None = "leave the values as they are", as Schedule.update(pipeline_parameters=None)
            parameters = (
                current.settings.parameters
                if settings.parameters is None
                else (settings.parameters)
            )
            conn.execute(
                "UPDATE schedules SET recurrence_json = ?, description = ?, parameters_json = ?, "
                "status = ? WHERE id = ?",
                (
                    settings.recurrence.model_dump_json(),
                    settings.description,
                    json.dumps(parameters, sort_keys=True),
                    settings.status.value,
                    schedule_id,
                ),
            )
            found = self._schedule(conn, schedule_id)
            assert found is not None
            return found

        return self._write("update_schedule", run)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """By id."""
        return self._read("get_schedule", lambda c: self._schedule(c, schedule_id))

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules with this name on this endpoint, any status."""

        def run(conn: sqlite3.Connection) -> list[ScheduleRecord]:
            rows = conn.execute(
                "SELECT * FROM schedules WHERE ws = ? AND endpoint_id = ? AND name = ? "
                "ORDER BY rowid",
                (self.ws, endpoint_id, name),
            ).fetchall()
            return [self._schedule_row(r) for r in rows]

        return self._read("find_schedules", run)
