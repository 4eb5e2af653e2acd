"""The tests' fake Azure ML ARM service (:class:`tests.azureml_v2.fake_arm.FakeArm`) served over
HTTPS on loopback, for code that runs in another process: the dynamic-provider host.

The provider host is pointed at it only through configuration Azure's own SDKs read from the
environment, so the provider runs unchanged (no monkeypatching, no test hook in the product):

- `ARM_CLOUD_METADATA_URL`: azure-ai-ml's setting for a cloud other than the public one (a
  sovereign or private cloud). It reads the cloud's endpoints from that URL (ARM's
  `metadata/endpoints` document); this server answers with a cloud whose resource manager is
  itself, and azure-ai-ml's MLClient then sends every workspace call here.
- `IDENTITY_ENDPOINT` + `IDENTITY_HEADER`: the App Service managed-identity token endpoint, which
  azure-identity's `DefaultAzureCredential` (the provider's credential) uses when they are set.
  The server hands out a token only for the right `X-IDENTITY-HEADER` and the ARM audience, and
  the ARM side refuses a request without that token: authentication is exercised, not skipped.
- `REQUESTS_CA_BUNDLE`: the server's self-signed certificate (azure-core refuses bearer tokens
  over plain HTTP, as it should; requests reads the bundle from the environment).

Every request is handled by one :class:`FakeArm` in this (the test) process, so a test reads what
the host did from `arm.requests` / `arm.objects`. Observers run after every write, in order.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, urlparse

from azure.core.pipeline.transport import HttpRequest

from tests.azureml_v2.fake_arm import FakeArm
from tests.tls import self_signed_certificate

CLOUD_NAME = "AmlpipeLoopback"
METADATA_PATH = "/metadata/endpoints"
TOKEN_PATH = "/msi/token"
WRITE_METHODS = frozenset({"PUT", "POST", "PATCH", "DELETE"})

Timing = Literal["before", "after"]
Observer = Callable[[str, str], None]
"""Called after each write the service applied, with its method and path below the workspace."""


@dataclass
class Fault:
    """A write to fail once (see :meth:`LoopbackArm.fail`)."""

    method: str
    path_part: str
    timing: Timing


@dataclass
class LoopbackArm:
    """A running HTTPS server in front of `arm` (see the module docstring)."""

    arm: FakeArm
    base_url: str
    ca_bundle: Path
    identity_header: str
    token: str
    observers: list[Observer] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)
    """Requests refused for a missing or wrong token (method, path)."""
    faults: list[Fault] = field(default_factory=list)
    """Armed faults, each fired once by the first write it matches."""

    def host_env(self) -> dict[str, str]:
        """What the provider host's environment needs to reach this service (and nothing of the
        developer's Azure login: those variables are blanked so no real tenant is tried)."""
        return {
            "ARM_CLOUD_METADATA_URL": f"{self.base_url}{METADATA_PATH}?api-version=2022-09-01",
            "IDENTITY_ENDPOINT": f"{self.base_url}{TOKEN_PATH}",
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
            "NO_PROXY": "127.0.0.1",
            "no_proxy": "127.0.0.1",
        }

    def metadata(self) -> list[dict[str, Any]]:
        """ARM's cloud metadata document for a cloud served here."""
        return [
            {
                "name": CLOUD_NAME,
                "portal": "https://portal.loopback.test",
                "resourceManager": f"{self.base_url}/",
                "authentication": {
                    "loginEndpoint": f"{self.base_url}/login/",
                    "audiences": [f"{self.base_url}/"],
                },
                "suffixes": {"storage": "loopback.test"},
            }
        ]

    def fail(self, method: str, path_part: str, timing: Timing = "before") -> None:
        """Fail the next `method` write whose path contains `path_part`: answered 409 (a
        conflict: azure-core does not retry it), before it applies or after."""
        self.faults.append(Fault(method, path_part, timing))


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        loop = self.server.loopback
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlparse(self.path)
        if url.path == METADATA_PATH and self.command == "GET":
            self._send(200, loop.metadata())
            return
        if url.path == TOKEN_PATH and self.command == "GET":
            self._token(parse_qs(url.query))
            return
        if self.headers.get("Authorization") != f"Bearer {loop.token}":
            loop.refused.append((self.command, url.path))
            self._send(401, {"error": {"code": "AuthenticationFailed", "message": url.path}})
            return
        with self.server.lock:
            fault = next(
                (f for f in loop.faults if f.method == self.command and f.path_part in url.path),
                None,
            )
            if fault is not None:
                loop.faults.remove(fault)
            conflict = {"error": {"code": "Conflict", "message": f"injected fault {url.path}"}}
            if fault is not None and fault.timing == "before":
                self._send(409, conflict)
                return
            request = HttpRequest(self.command, f"{loop.base_url}{self.path}", data=body or None)
            if body:
                request.set_bytes_body(body)
            response = loop.arm.send(request)
            status, payload = response.status_code, response.body()
            if self.command in WRITE_METHODS and status < 400:
                _, rest = loop.arm.requests[-1]  # this request (the lock keeps them in order)
                for observer in list(loop.observers):
                    observer(self.command, rest)
        if fault is not None:  # applied, then answered as failed
            self._send(409, conflict)
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _token(self, query: dict[str, list[str]]) -> None:
        loop = self.server.loopback
        if self.headers.get("X-IDENTITY-HEADER") != loop.identity_header:
            self._send(401, {"error": "unauthorized", "error_description": "identity header"})
            return
        resource = (query.get("resource") or [""])[0]
        if resource.rstrip("/").removesuffix("/.default").rstrip("/") != loop.base_url:
            self._send(400, {"error": "invalid_resource", "error_description": resource})
            return
        expires = int(time.time()) + 3600
        self._send(
            200,
            {
                "access_token": loop.token,
                "expires_on": str(expires),
                "resource": resource,
                "token_type": "Bearer",
            },
        )

    do_GET = do_PUT = do_POST = do_PATCH = do_DELETE = _handle


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    loopback: LoopbackArm
    lock: threading.Lock


@contextmanager
def serve(arm: FakeArm, folder: Path) -> Iterator[LoopbackArm]:
    """Serve `arm` on an ephemeral loopback port over HTTPS until the block ends."""
    pem, key_file = self_signed_certificate(folder, "loopback-arm")
    server = _Server(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    server.lock = threading.Lock()
    port = server.server_address[1]
    server.loopback = LoopbackArm(
        arm=arm,
        base_url=f"https://127.0.0.1:{port}",
        ca_bundle=pem,
        identity_header=secrets.token_urlsafe(24),
        token=secrets.token_urlsafe(32),
    )
    thread = threading.Thread(target=server.serve_forever, name="loopback-arm", daemon=True)
    thread.start()
    try:
        yield server.loopback
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
