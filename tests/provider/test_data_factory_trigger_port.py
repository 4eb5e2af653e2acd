"""The trigger port's contract, met by both adapters: the local store, and the ARM REST adapter
talking real HTTP (azure-core) to an ARM stand-in on loopback that answers like Data Factory's
REST API 2018-06-01 (runtimeState in GET, TriggerEnabledCannotUpdate, 404 for a missing trigger,
start/stop accepted with 202 and applied a little later, a transient "during provisioning")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from azure.core import PipelineClient

from infra.provider.adf_port import (
    API_VERSION,
    LocalTriggerStore,
    RuntimeState,
    TriggerError,
    TriggerPort,
    TriggerRef,
)
from infra.provider.adf_rest import RestTriggerPort
from infra.provider.adf_trigger import TriggerInputs, apply, create, delete

REF = TriggerRef("sub", "rg", "adf", "t-1")
PROPS = {
    "type": "ScheduleTrigger",
    "pipelines": [{"pipelineReference": {"referenceName": "p", "type": "PipelineReference"}}],
    "typeProperties": {"recurrence": {"frequency": "Day", "interval": 1, "timeZone": "UTC"}},
}


class FakeArm:
    """Data Factory triggers as ARM serves them (the parts the adapter uses)."""

    def __init__(self) -> None:
        self.triggers: dict[str, dict[str, Any]] = {}
        self.pending: dict[str, tuple[str, int]] = {}  # path -> (state, GETs until applied)
        self.transient_puts = 0
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def handle(self, method: str, path: str, query: str, body: Any) -> tuple[int, Any]:
        with self.lock:
            self.requests.append((method, path))
            if f"api-version={API_VERSION}" not in query:
                return 400, _error("MissingApiVersionParameter", "api-version is required")
            action = None
            for suffix in ("/start", "/stop"):
                if method == "POST" and path.endswith(suffix):
                    path, action = path[: -len(suffix)], suffix[1:]
            trigger = self.triggers.get(path)
            if method == "GET":
                if trigger is None:
                    return 404, _error("NotFound", "trigger not found")
                if path in self.pending:
                    state, left = self.pending[path]
                    if left <= 0:
                        trigger["runtimeState"] = state
                        del self.pending[path]
                    else:
                        self.pending[path] = (state, left - 1)
                # ADF adds keys of its own to what was written.
                properties = {"annotations": [], **trigger}
                return 200, {"id": path, "name": path.rsplit("/", 1)[1], "properties": properties}
            if action is not None:
                if trigger is None:
                    return 404, _error("NotFound", "trigger not found")
                self.pending[path] = ("Started" if action == "start" else "Stopped", 2)
                return 202, None
            if trigger is not None and trigger["runtimeState"] == "Started":
                return 400, _error(
                    "TriggerEnabledCannotUpdate",
                    "Cannot update enabled Trigger; the trigger needs to be disabled first.",
                )
            if method == "PUT":
                if self.transient_puts:
                    self.transient_puts -= 1
                    return 400, _error(
                        "BadRequest", "Resource cannot be updated during provisioning"
                    )
                state = trigger["runtimeState"] if trigger else "Stopped"
                self.triggers[path] = {**body["properties"], "runtimeState": state}
                return 200, {"id": path, "properties": self.triggers[path]}
            if method == "DELETE":
                return (200, None) if self.triggers.pop(path, None) else (204, None)
            return 405, _error("MethodNotAllowed", method)


def _error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


@pytest.fixture
def arm() -> Iterator[tuple[FakeArm, str]]:
    fake = FakeArm()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, answer = fake.handle(self.command, url.path, url.query, body)
            data = json.dumps(answer).encode() if answer is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(params=["local", "rest"])
def port(request: pytest.FixtureRequest, tmp_path: Path) -> TriggerPort:
    if request.param == "local":
        return LocalTriggerStore(tmp_path / "triggers.sqlite")
    _, url = request.getfixturevalue("arm")
    return RestTriggerPort(PipelineClient(url), base_url=url, poll_seconds=0.01)


def _want(started: bool, hour: int = 2) -> TriggerInputs:
    properties = json.loads(json.dumps(PROPS))
    properties["typeProperties"]["recurrence"]["schedule"] = {"hours": [hour]}
    return TriggerInputs(
        subscription_id=REF.subscription_id,
        resource_group=REF.resource_group,
        factory_name=REF.factory_name,
        name=REF.name,
        properties=properties,
        started=started,
        owner="azureml-pipelines:test",
    )


def test_port_contract_create_start_change_stop_delete(port: TriggerPort) -> None:
    assert port.get(REF) is None
    created = port.put(REF, PROPS)
    assert created.runtime_state is RuntimeState.STOPPED  # ADF creates triggers stopped
    assert created.id.endswith("/factories/adf/triggers/t-1")
    port.start(REF)
    started = port.get(REF)
    assert started is not None and started.runtime_state is RuntimeState.STARTED
    assert "runtimeState" not in started.properties
    for write in (lambda: port.put(REF, PROPS), lambda: port.delete(REF)):
        with pytest.raises(TriggerError) as caught:
            write()
        assert caught.value.code == "TriggerEnabledCannotUpdate"
    port.stop(REF)
    port.delete(REF)
    assert port.get(REF) is None
    port.delete(REF)  # already gone is fine


def test_operations_keep_the_trigger_writable_on_either_adapter(port: TriggerPort) -> None:
    record = create(port, _want(started=True))
    assert record.runtime_state is RuntimeState.STARTED
    # A new recurrence on the started trigger: stopped, written, started again.
    record = apply(port, _want(started=True, hour=5), port.get(REF))
    assert record.runtime_state is RuntimeState.STARTED
    assert record.properties["typeProperties"]["recurrence"]["schedule"] == {"hours": [5]}
    delete(port, REF)
    assert port.get(REF) is None


def test_rest_adapter_retries_a_write_refused_during_provisioning(
    arm: tuple[FakeArm, str],
) -> None:
    fake, url = arm
    rest = RestTriggerPort(PipelineClient(url), base_url=url, poll_seconds=0.01)
    fake.transient_puts = 1
    record = rest.put(REF, PROPS)
    assert record.runtime_state is RuntimeState.STOPPED
    assert [m for m, _ in fake.requests].count("PUT") == 2


def test_rest_adapter_reports_other_refusals_with_their_code(arm: tuple[FakeArm, str]) -> None:
    _, url = arm
    rest = RestTriggerPort(PipelineClient(url), base_url=url, poll_seconds=0.01)
    with pytest.raises(TriggerError) as caught:
        rest.start(REF)
    assert caught.value.code == "NotFound"
