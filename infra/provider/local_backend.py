"""A SQLite-backed stand-in for Azure ML v1 pipelines, endpoints and schedules.

It follows the service's rules (see :mod:`infra.provider.port`) so that tests exercise the rules
Azure enforces, and a local stack (`backend: local`) can be deployed without Azure. It is only a
backend: call counting and fault injection wrap any backend and live with the tests.

The store file is marked as ours (SQLite ``application_id`` and ``user_version``) and the mark is
checked on every connection, before any write: a file that is not a store of ours (another
SQLite database, a corrupt or truncated file, a store of another schema version) is never
written to, and the error names the file and says what to do. A new store is built beside its
final path and moved into place in one step, so no process ever sees a half-made store, and a
store deleted while in use is reported instead of silently recreated empty.

The provider host may run operations on several threads, and several hosts (stacks) may share
one store: every call opens its own connection and writes inside one ``BEGIN IMMEDIATE``
transaction.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from infra.definitions.model import Recurrence
from infra.provider.port import (
    BackendError,
    EndpointRecord,
    EndpointVersion,
    Owner,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
    WorkspaceRef,
)

APPLICATION_ID = 0x414D4C50
"""SQLite ``application_id`` of a local store ("AMLP")."""
SCHEMA_VERSION = 2
"""SQLite ``user_version`` of the current schema (1 was the unmarked schema without owners)."""

_SCHEMA = f"""
PRAGMA application_id = {APPLICATION_ID};
PRAGMA user_version = {SCHEMA_VERSION};
CREATE TABLE published (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, version_tag TEXT NOT NULL,
    status TEXT NOT NULL, spec_json TEXT NOT NULL, images_json TEXT NOT NULL,
    seq INTEGER NOT NULL, owner TEXT);
CREATE TABLE endpoints (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
    default_version TEXT NOT NULL, description TEXT NOT NULL, owner TEXT);
CREATE TABLE endpoint_versions (
    endpoint_id TEXT NOT NULL, version INTEGER NOT NULL, pipeline_id TEXT NOT NULL,
    PRIMARY KEY (endpoint_id, version));
CREATE TABLE schedules (
    id TEXT PRIMARY KEY, ws TEXT NOT NULL, name TEXT NOT NULL, endpoint_id TEXT NOT NULL,
    experiment TEXT NOT NULL, recurrence_json TEXT NOT NULL, description TEXT NOT NULL,
    parameters_json TEXT NOT NULL, status TEXT NOT NULL, owner TEXT);
"""

T = TypeVar("T")


class LocalStoreError(BackendError):
    """The store file cannot be used; the message names it and says what to do."""


def _owner_text(owner: Owner | None) -> str | None:
    return None if owner is None else json.dumps([owner.project, owner.stack])


def _owner_of(text: str | None) -> Owner | None:
    if text is None:
        return None
    project, stack = json.loads(text)
    return Owner(project, stack)


class LocalStore:
    """The SQLite file (shared by every workspace in it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._create_lock = threading.Lock()
        self._created = False
        """Set once this object has made or found the file: from then on a missing file is an
        error (deleted while in use), not a reason to start an empty store."""

    def __str__(self) -> str:
        return f"local store {self.path}"

    def _error(self, problem: str, advice: str) -> LocalStoreError:
        return LocalStoreError(f"local store {self.path}: {problem}; {advice}")

    def _create(self) -> None:
        """Build a new store beside the final path and move it into place without replacing
        anything (a link fails when the name exists): never a half-made store under the name."""
        with self._create_lock:
            if self._created:
                return
            if self.path.exists():
                self._created = True
                return
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise self._error(
                    f"cannot create its folder ({exc.strerror})",
                    "set localStorePath to a writable location",
                ) from exc
            temp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex}.new")
            try:
                conn = sqlite3.connect(temp, isolation_level=None)
                try:
                    conn.executescript(_SCHEMA)
                finally:
                    conn.close()
                # FileExistsError: another process made it first; use theirs.
                with contextlib.suppress(FileExistsError):
                    os.link(temp, self.path)
                self._created = True
            except OSError as exc:
                raise self._error(
                    f"cannot create it ({exc.strerror})", "set localStorePath to a writable file"
                ) from exc
            finally:
                temp.unlink(missing_ok=True)

    def _open(self) -> sqlite3.Connection:
        """A connection to the existing file (never creates one), checked to be our store."""
        if not self.path.exists():
            raise self._error(
                "the file does not exist (deleted while the provider was running?)",
                "restore it from a backup, or run `pulumi refresh` so the stack forgets what "
                "was in it",
            )
        try:
            conn = sqlite3.connect(
                f"{self.path.resolve().as_uri()}?mode=rw",
                uri=True,
                timeout=60,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise self._error(f"cannot open it ({exc})", "check its permissions") from exc
        try:
            self._check_mark(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _check_mark(self, conn: sqlite3.Connection) -> None:
        if self.path.stat().st_size == 0:
            raise self._error(
                "the file is empty (truncated?)",
                "restore it from a backup, or delete it to start a new, empty store",
            )
        try:
            app_id = conn.execute("PRAGMA application_id").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise self._error(
                f"not a readable SQLite database ({exc}): corrupt, truncated or another kind "
                "of file",
                "restore it from a backup, or point localStorePath at another file (nothing "
                "was written to it)",
            ) from exc
        if app_id != APPLICATION_ID:
            raise self._error(
                "not a store of amlpipe's local backend (another program's SQLite database, or "
                "a store made before stores were marked)",
                "point localStorePath at another file; nothing was written to this one",
            )
        if version != SCHEMA_VERSION:
            raise self._error(
                f"store schema version {version}, this provider reads {SCHEMA_VERSION}",
                "use the amlpipe version that made it, or start a new store at another path",
            )

    @contextmanager
    def connect(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """A fresh connection in one transaction, committed on success, rolled back on error;
        the store is created on first use and its mark checked every time."""
        if not self._created:
            self._create()
        conn = self._open()
        try:
            conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield conn
            except sqlite3.DatabaseError as exc:
                conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
                    raise  # a lock timeout or a broken rule, not a damaged file
                raise self._error(
                    f"the database is damaged ({exc})", "restore it from a backup"
                ) from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()


class LocalBackend:
    """The backend port on a :class:`LocalStore`, for one workspace."""

    def __init__(self, store: LocalStore, workspace: WorkspaceRef) -> None:
        self.store = store
        self.ws = workspace.key()

    def __str__(self) -> str:
        return f"{self.store} (workspace {self.ws})"

    # -- plumbing -----------------------------------------------------------------------------

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.store.connect() as conn:
            return fn(conn)

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self.store.connect(immediate=True) as conn:
            return fn(conn)

    def _rest_url(self, endpoint_id: str) -> str:
        return (
            f"http://localhost/local-aml/{self.ws}/PipelineRuns/PipelineEndpointSubmit/Id/"
            f"{endpoint_id}"
        )

    @staticmethod
    def _pipeline(conn: sqlite3.Connection, pipeline_id: str) -> PublishedPipelineRecord:
        row = conn.execute(
            "SELECT id, name, version_tag, status, owner FROM published WHERE id = ?",
            (pipeline_id,),
        ).fetchone()
        if row is None:
            raise BackendError(f"published pipeline {pipeline_id} not found")
        return PublishedPipelineRecord(row[0], row[1], row[2], Status(row[3]), _owner_of(row[4]))

    def _endpoint(self, conn: sqlite3.Connection, where: str, value: str) -> EndpointRecord | None:
        row = conn.execute(
            "SELECT id, name, status, default_version, owner FROM endpoints "
            f"WHERE ws = ? AND {where} = ?",
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
            row[0],
            row[1],
            Status(row[2]),
            row[3],
            self._rest_url(row[0]),
            versions,
            _owner_of(row[4]),
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
                "INSERT INTO published VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    self.ws,
                    build.name,
                    build.version_tag,
                    Status.ACTIVE.value,
                    build.spec.model_dump_json(),
                    json.dumps(build.images, sort_keys=True),
                    seq,
                    _owner_text(build.owner),
                ),
            )
            return self._pipeline(conn, new_id)

        return self._write(run)

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines with this name, oldest first."""

        def run(conn: sqlite3.Connection) -> list[PublishedPipelineRecord]:
            rows = conn.execute(
                "SELECT id FROM published WHERE ws = ? AND name = ? AND status = ? ORDER BY seq",
                (self.ws, name, Status.ACTIVE.value),
            ).fetchall()
            return [self._pipeline(conn, r[0]) for r in rows]

        return self._read(run)

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline."""

        def run(conn: sqlite3.Connection) -> None:
            self._pipeline(conn, pipeline_id)
            conn.execute(
                "UPDATE published SET status = ? WHERE id = ?", (Status.DISABLED.value, pipeline_id)
            )

        self._write(run)

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

    def create_endpoint(
        self, name: str, description: str, pipeline_id: str, owner: Owner
    ) -> EndpointRecord:
        """Create an endpoint; fails like Azure when the name is taken."""
        new_id = str(uuid.uuid4())

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            if self._endpoint(conn, "name", name) is not None:
                raise BackendError(
                    f"PipelineEndpoint already exists with the name {name!r}. "
                    "Please choose a unique value."
                )
            conn.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?, ?)",
                (new_id, self.ws, name, Status.ACTIVE.value, "0", description, _owner_text(owner)),
            )
            self._add_version(conn, new_id, pipeline_id)
            return self._require_endpoint(conn, new_id)

        return self._write(run)

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """By id, or by name."""
        if endpoint_id is not None:
            return self._read(lambda c: self._endpoint(c, "id", endpoint_id))
        if name is not None:
            return self._read(lambda c: self._endpoint(c, "name", name))
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

        return self._write(run)

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """Point the default at an existing version."""

        def run(conn: sqlite3.Connection) -> EndpointRecord:
            endpoint = self._require_endpoint(conn, endpoint_id)
            endpoint.version(version)  # KeyError like Azure's ValueError when absent
            conn.execute(
                "UPDATE endpoints SET default_version = ? WHERE id = ?", (version, endpoint_id)
            )
            return self._require_endpoint(conn, endpoint_id)

        return self._write(run)

    def archive_endpoint(self, endpoint_id: str) -> None:
        """Rename to a random name and disable, as ``PipelineEndpoint.archive`` does."""

        def run(conn: sqlite3.Connection) -> None:
            self._require_endpoint(conn, endpoint_id)
            conn.execute(
                "UPDATE endpoints SET name = ?, status = ? WHERE id = ?",
                (str(uuid.uuid4()), Status.DISABLED.value, endpoint_id),
            )

        self._write(run)

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

        return self._write(run)

    # -- schedules ----------------------------------------------------------------------------

    @staticmethod
    def _schedule_row(row: tuple[str, ...]) -> ScheduleRecord:
        settings = ScheduleSettings(
            recurrence=Recurrence.model_validate_json(row[5]),
            description=row[6],
            parameters=json.loads(row[7]),
            status=Status(row[8]),
        )
        return ScheduleRecord(row[0], row[2], row[3], row[4], settings, _owner_of(row[9]))

    def _schedule(self, conn: sqlite3.Connection, schedule_id: str) -> ScheduleRecord | None:
        row = conn.execute(
            "SELECT * FROM schedules WHERE id = ? AND ws = ?", (schedule_id, self.ws)
        ).fetchone()
        return None if row is None else self._schedule_row(row)

    def create_schedule(
        self,
        name: str,
        endpoint_id: str,
        experiment: str,
        settings: ScheduleSettings,
        owner: Owner,
    ) -> ScheduleRecord:
        """Create a schedule with the status asked for, in one write (a paused one never runs)."""
        new_id = str(uuid.uuid4())

        def run(conn: sqlite3.Connection) -> ScheduleRecord:
            self._require_endpoint(conn, endpoint_id)
            conn.execute(
                "INSERT INTO schedules VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    new_id,
                    self.ws,
                    name,
                    endpoint_id,
                    experiment,
                    settings.recurrence.model_dump_json(),
                    settings.description,
                    json.dumps(settings.parameters, sort_keys=True),
                    settings.status.value,
                    _owner_text(owner),
                ),
            )
            found = self._schedule(conn, new_id)
            assert found is not None
            return found

        return self._write(run)

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

        return self._write(run)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """By id."""
        return self._read(lambda c: self._schedule(c, schedule_id))

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules with this name on this endpoint, any status."""

        def run(conn: sqlite3.Connection) -> list[ScheduleRecord]:
            rows = conn.execute(
                "SELECT * FROM schedules WHERE ws = ? AND endpoint_id = ? AND name = ? "
                "ORDER BY rowid",
                (self.ws, endpoint_id, name),
            ).fetchall()
            return [self._schedule_row(r) for r in rows]

        return self._read(run)
