"""The local backend's store file: marked as ours and checked before any write; a store that
is corrupt, truncated, foreign, from another schema or deleted while in use is an error that
names the file and says what to do, and the file is left as it was."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from infra.provider.local_backend import (
    APPLICATION_ID,
    LocalBackend,
    LocalStore,
    LocalStoreError,
)
from tests.provider.conftest import LOCAL_CONFIG
from tests.provider.grpc_host import ENDPOINT_TYPE, ProviderHost, Stack
from tests.provider.provider_fixtures import STORE, WORKSPACE, Project


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _foreign_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (body TEXT)")
    conn.execute("INSERT INTO notes VALUES ('keep me')")
    conn.commit()
    conn.close()


def _unmarked_store(path: Path) -> None:
    """A store as the provider wrote it before stores were marked (no application_id)."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE endpoints (id TEXT PRIMARY KEY, ws TEXT, name TEXT)")
    conn.commit()
    conn.close()


def _truncated_store(path: Path) -> None:
    LocalBackend(LocalStore(path), WORKSPACE).get_endpoint(name="x")  # a real store
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 10])


def _other_schema(path: Path) -> None:
    LocalBackend(LocalStore(path), WORKSPACE).get_endpoint(name="x")
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


CASES = {
    "foreign-sqlite": (_foreign_database, "not a store of amlpipe's local backend"),
    "unmarked-old-store": (_unmarked_store, "not a store of amlpipe's local backend"),
    "garbage": (lambda p: p.write_bytes(b"\x00not a database" * 300), "not a readable SQLite"),
    "empty": (lambda p: p.write_bytes(b""), "the file is empty (truncated?)"),
    "truncated": (_truncated_store, "restore it from a backup"),
    "other-schema": (_other_schema, "store schema version 99"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_file_that_is_not_a_usable_store_is_refused_untouched(tmp_path: Path, case: str) -> None:
    path = tmp_path / "store.sqlite"
    make, expected = CASES[case]
    make(path)
    before = _digest(path)
    backend = LocalBackend(LocalStore(path), WORKSPACE)
    for operation in (
        lambda: backend.get_endpoint(name="demo"),
        lambda: backend.disable_pipeline("p1"),  # a write: refused before touching anything
    ):
        with pytest.raises(LocalStoreError) as raised:
            operation()
        message = str(raised.value)
        assert str(path) in message and expected in message, message
    assert _digest(path) == before


def test_through_the_provider_host_the_error_names_the_file(project: Project) -> None:
    path = project.root / STORE
    path.parent.mkdir(parents=True)
    _foreign_database(path)
    before = _digest(path)
    host = ProviderHost(project.root)
    try:
        host.configure(LOCAL_CONFIG)
        with pytest.raises(grpc.RpcError) as raised:
            Stack(host).up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    finally:
        host.close()
    details = str(raised.value.details())  # type: ignore[attr-defined]
    assert str(path) in details and "point localStorePath at another file" in details
    assert "Traceback" not in details.splitlines()[0]
    assert _digest(path) == before
    rows = sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall()
    assert rows == [("notes",)]  # none of the provider's tables was added


def test_a_store_deleted_while_in_use_is_reported_not_recreated_empty(tmp_path: Path) -> None:
    path = tmp_path / "store.sqlite"
    backend = LocalBackend(LocalStore(path), WORKSPACE)
    assert backend.get_endpoint(name="demo") is None  # made on first use
    path.unlink()
    with pytest.raises(LocalStoreError, match=r"does not exist \(deleted while the provider"):
        backend.get_endpoint(name="demo")
    assert not path.exists()


def test_a_new_store_is_marked_and_made_once_by_concurrent_first_users(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "store.sqlite"
    errors: list[BaseException] = []

    def first_use() -> None:
        try:
            LocalBackend(LocalStore(path), WORKSPACE).get_endpoint(name="demo")
        except BaseException as exc:  # collected, re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    assert sorted(p.name for p in path.parent.iterdir()) == ["store.sqlite"]  # no temp left


def test_the_provider_reads_its_settings_through_the_one_settings_model(project: Project) -> None:
    host = ProviderHost(project.root)
    try:
        host.configure({**LOCAL_CONFIG, "azureml-pipelines:backend": "cloud"})
        # The host hands the config to the provider when it first loads it
        with pytest.raises(grpc.RpcError) as raised:
            Stack(host).up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
    finally:
        host.close()
    details = str(raised.value.details())  # type: ignore[attr-defined]
    assert "azureml-pipelines:backend" in details and "azureml" in details and "local" in details
