"""The Data Factory trigger port: the five trigger operations the trigger provider needs.

Azure Data Factory's rules, which every adapter follows (the local store enforces them, so the
provider tests meet them):

- a trigger is created (and re-created) **stopped**; starting and stopping are separate calls;
- a started trigger can be neither updated nor deleted (ADF answers `TriggerEnabledCannotUpdate`):
  stop it first;
- the runtime state reads back as `Started` or `Stopped` (`Disabled` for triggers ADF turned off).

Two adapters: :class:`LocalTriggerStore` here (SQLite file beside the local backend's store, used
by tests and local stacks) and :mod:`infra.provider.adf_rest` (ARM REST through azure-core, with
the credential of the environment).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

API_VERSION = "2018-06-01"


class RuntimeState(StrEnum):
    """`properties.runtimeState` of an ADF trigger."""

    STARTED = "Started"
    STOPPED = "Stopped"
    DISABLED = "Disabled"


@dataclass(frozen=True)
class TriggerRef:
    """Where a trigger lives (no credentials: those come from the environment)."""

    subscription_id: str
    resource_group: str
    factory_name: str
    name: str

    def arm_path(self) -> str:
        """The trigger's ARM path (also the resource id)."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.DataFactory/factories/{self.factory_name}/triggers/{self.name}"
        )


@dataclass(frozen=True)
class TriggerRecord:
    """A trigger as ADF reports it: its properties (runtime state taken out) and that state."""

    id: str
    properties: dict[str, Any]
    runtime_state: RuntimeState


class TriggerError(RuntimeError):
    """An operation ADF refused; `code` is ADF's error code (e.g. TriggerEnabledCannotUpdate)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class TriggerPort(Protocol):
    """Trigger operations of one Data Factory API (ARM or the local store)."""

    def get(self, ref: TriggerRef) -> TriggerRecord | None:
        """The trigger, or None when it does not exist."""

    def put(self, ref: TriggerRef, properties: dict[str, Any]) -> TriggerRecord:
        """Create or replace the trigger's properties (refused while it is started)."""

    def delete(self, ref: TriggerRef) -> None:
        """Delete the trigger (refused while started; absent is fine)."""

    def start(self, ref: TriggerRef) -> None:
        """Start the trigger."""

    def stop(self, ref: TriggerRef) -> None:
        """Stop the trigger."""


def store_path_for(local_store: Path) -> Path:
    """The trigger store beside the local backend's store file."""
    return local_store.with_name(local_store.stem + ".datafactory.sqlite")


class LocalTriggerStore:
    """ADF triggers in a SQLite file, with ADF's rules (see the module docstring).

    One row per trigger; every write is one transaction, so concurrent provider threads (the
    engine runs resource operations in parallel) and processes see whole triggers only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._tx() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS triggers (id TEXT PRIMARY KEY, properties TEXT NOT "
                "NULL, runtime_state TEXT NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS calls (op TEXT PRIMARY KEY, n INTEGER)")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One transaction on a fresh connection, closed afterwards."""
        db = sqlite3.connect(self.path, timeout=30, isolation_level="IMMEDIATE")
        try:
            with db:
                yield db
        finally:
            db.close()

    def _count(self, db: sqlite3.Connection, op: str) -> None:
        db.execute("INSERT INTO calls VALUES (?, 1) ON CONFLICT(op) DO UPDATE SET n = n + 1", (op,))

    def _row(self, db: sqlite3.Connection, ref: TriggerRef) -> TriggerRecord | None:
        row = db.execute(
            "SELECT properties, runtime_state FROM triggers WHERE id = ?", (ref.arm_path(),)
        ).fetchone()
        if row is None:
            return None
        return TriggerRecord(ref.arm_path(), json.loads(row[0]), RuntimeState(row[1]))

    def get(self, ref: TriggerRef) -> TriggerRecord | None:
        """The trigger, or None."""
        with self._lock, self._tx() as db:
            return self._row(db, ref)

    def put(self, ref: TriggerRef, properties: dict[str, Any]) -> TriggerRecord:
        """Create (stopped) or replace a stopped trigger's properties."""
        with self._lock, self._tx() as db:
            self._count(db, "put")
            old = self._row(db, ref)
            if old is not None and old.runtime_state is RuntimeState.STARTED:
                raise TriggerError(
                    "TriggerEnabledCannotUpdate",
                    "Cannot update enabled Trigger; the trigger needs to be disabled first.",
                )
            state = old.runtime_state if old is not None else RuntimeState.STOPPED
            db.execute(
                "INSERT OR REPLACE INTO triggers VALUES (?, ?, ?)",
                (ref.arm_path(), json.dumps(properties, sort_keys=True), state.value),
            )
            return TriggerRecord(ref.arm_path(), properties, state)

    def delete(self, ref: TriggerRef) -> None:
        """Delete a stopped trigger."""
        with self._lock, self._tx() as db:
            self._count(db, "delete")
            old = self._row(db, ref)
            if old is not None and old.runtime_state is RuntimeState.STARTED:
                raise TriggerError(
                    "TriggerEnabledCannotUpdate",
                    "Cannot update enabled Trigger; the trigger needs to be disabled first.",
                )
            db.execute("DELETE FROM triggers WHERE id = ?", (ref.arm_path(),))

    def _set_state(self, ref: TriggerRef, state: RuntimeState, op: str) -> None:
        with self._lock, self._tx() as db:
            self._count(db, op)
            if self._row(db, ref) is None:
                raise TriggerError("TriggerNotFound", f"trigger {ref.name!r} not found")
            db.execute(
                "UPDATE triggers SET runtime_state = ? WHERE id = ?", (state.value, ref.arm_path())
            )

    def start(self, ref: TriggerRef) -> None:
        """Start the trigger."""
        self._set_state(ref, RuntimeState.STARTED, "start")

    def stop(self, ref: TriggerRef) -> None:
        """Stop the trigger."""
        self._set_state(ref, RuntimeState.STOPPED, "stop")

    def calls(self) -> dict[str, int]:
        """Writes by operation since the store was made or reset (tests count them)."""
        with self._lock, self._tx() as db:
            return dict(db.execute("SELECT op, n FROM calls").fetchall())

    def reset_calls(self) -> None:
        """Forget the counts."""
        with self._lock, self._tx() as db:
            db.execute("DELETE FROM calls")
