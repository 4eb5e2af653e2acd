"""A loopback stand-in for Azure Blob Storage, spoken to over real HTTP by the real
azure-storage-blob client (which azure-ai-ml builds itself, with no transport of ours).

It implements exactly the blob operations azure-ai-ml 1.35.2 uses to upload a code folder into
the temporary container the workspace hands out (`codes/{name}/versions/{v}/startPendingUpload`
answers a container URL and a container SAS), and answers them the way the Blob service's REST
contract says (service version 2020-02-10 and later):

- Get Blob Properties (`HEAD`): 200 with the blob's headers and `x-ms-meta-*`, or 404 with
  `x-ms-error-code: BlobNotFound` (a HEAD carries no body);
- Put Blob (`PUT`, `x-ms-blob-type: BlockBlob`): 201; `If-None-Match: *` on an existing blob is
  409 `BlobAlreadyExists`; a `Content-MD5` that does not match the body is 400 `Md5Mismatch`;
- Put Block / Put Block List (`comp=block`, `comp=blocklist`) for files above the client's single
  put size: 201, blocks staged per blob and committed by the list;
- Set Blob Metadata (`comp=metadata`): 200, the metadata replaced; 404 on a missing blob.

Strict: every request must carry `x-ms-version`, a `Content-Length` matching its body (no chunked
bodies: the service refuses them) and the container's SAS (`sv`, `sr=c`, `sp`, `se`, `sig`); a
wrong or missing signature is 403 `AuthenticationFailed`. Anything else is answered 501 and
recorded in `unexpected`, so a test fails on requests the real client should not make.

Faults are injected per request through `fault` (see :class:`Fault`).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

ACCOUNT = "amlpipestore"
SAS_PERMISSIONS = "racwl"
"""What the workspace's temporary-container SAS grants (read, add, create, write, list)."""


Query = dict[str, list[str]]
Answer = tuple[int, dict[str, str], bytes]
"""Status, headers, body."""


@dataclass
class Blob:
    """One committed block blob."""

    data: bytes
    metadata: dict[str, str]
    etag: str
    created: str


@dataclass(frozen=True)
class Request:
    """One request as the stand-in saw it (`op` names the Blob REST operation)."""

    method: str
    container: str
    blob: str
    op: str
    headers: dict[str, str]


@dataclass(frozen=True)
class Fault:
    """An injected answer: `status` and the service's error code, or `drop` to close the
    connection without an answer (an interrupted transfer)."""

    status: int = 500
    code: str = "InternalError"
    drop: bool = False


@dataclass(frozen=True)
class _Call:
    container: str
    blobs: dict[str, Blob]
    blob: str
    query: Query
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeBlobService:
    """The stand-in's state: containers of blobs, SAS signatures, the requests seen."""

    containers: dict[str, dict[str, Blob]] = field(default_factory=dict)
    signatures: dict[str, str] = field(default_factory=dict)
    """Container -> the `sig` of the SAS issued for it."""
    requests: list[Request] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    fault: Callable[[Request], Fault | None] | None = None
    """Consulted for every authorised request before it is applied."""
    _staged: dict[tuple[str, str], dict[str, bytes]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> FakeBlobService:
        """Listen on an ephemeral loopback port (in a thread)."""
        service = self

        class Handler(_Handler):
            store = service

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def account_url(self) -> str:
        """Path-style account URL (as for the storage emulator: the account is the first path
        segment when the host is an address)."""
        assert self._server is not None, "start() first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/{ACCOUNT}"

    # -- what the workspace does ------------------------------------------------------------------

    def temporary_container(self) -> tuple[str, str]:
        """A new empty container and a SAS for it, as `startPendingUpload` hands out: returns
        (container URL, SAS query string)."""
        name = f"tmp-{secrets.token_hex(8)}"
        signature = secrets.token_urlsafe(24)
        with self._lock:
            self.containers[name] = {}
            self.signatures[name] = signature
        sas = (
            f"sv=2021-08-06&sr=c&sp={SAS_PERMISSIONS}&st=2026-01-01T00%3A00%3A00Z"
            f"&se=2099-01-01T00%3A00%3A00Z&spr=https%2Chttp&sig={signature}"
        )
        return f"{self.account_url}/{name}", sas

    # -- for assertions ---------------------------------------------------------------------------

    def ops(self, op: str) -> list[Request]:
        """The requests of one operation, in order."""
        return [r for r in self.requests if r.op == op]

    def folder(self, container: str, prefix: str) -> dict[str, bytes]:
        """The blobs under `prefix/` of a container, by path relative to it."""
        blobs = self.containers.get(container, {})
        start = prefix.rstrip("/") + "/"
        return {name[len(start) :]: b.data for name, b in blobs.items() if name.startswith(start)}

    # -- the REST operations ----------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: Query, headers: dict[str, str], body: bytes
    ) -> Answer | None:
        """Answer one request: (status, headers, body), or None to drop the connection."""
        parts = path.lstrip("/").split("/", 2)
        account = parts[0] if parts else ""
        container = parts[1] if len(parts) > 1 else ""
        blob = unquote(parts[2]) if len(parts) > 2 else ""
        comp = query.get("comp", [""])[0]
        op = _operation(method, comp, headers)
        request = Request(method, container, blob, op, dict(headers))
        with self._lock:
            self.requests.append(request)
        if op == "" or account != ACCOUNT or not blob:
            return self._unexpected(f"{method} {path}?comp={comp}")
        if "x-ms-version" not in headers:
            return self._unexpected(f"{method} {path} without x-ms-version")
        if headers.get("transfer-encoding"):
            return self._unexpected(f"{method} {path} with Transfer-Encoding")
        if not self._authorised(container, query):
            return _error(403, "AuthenticationFailed", method)
        if self.fault is not None:
            fault = self.fault(request)
            if fault is not None:
                return None if fault.drop else _error(fault.status, fault.code, method)
        with self._lock:
            blobs = self.containers.get(container)
            if blobs is None:
                return _error(404, "ContainerNotFound", method)
            call = _Call(container, blobs, blob, query, headers, body)
            answer: Answer = getattr(self, f"_{op}")(call)
            return answer

    def _authorised(self, container: str, query: Query) -> bool:
        given = {k: v[0] for k, v in query.items()}
        expected = self.signatures.get(container)
        return (
            expected is not None
            and given.get("sig") == expected
            and given.get("sr") == "c"
            and all(k in given for k in ("sv", "sp", "se"))
        )

    def _unexpected(self, what: str) -> Answer:
        with self._lock:
            self.unexpected.append(what)
        return _error(501, "NotImplemented", "PUT")

    def _get_properties(self, call: _Call) -> Answer:
        found = call.blobs.get(call.blob)
        if found is None:
            return _error(404, "BlobNotFound", "HEAD")
        headers = {
            **_blob_headers(found),
            "Content-Length": str(len(found.data)),
            "Content-Type": "application/octet-stream",
            "Content-MD5": _md5(found.data),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-creation-time": found.created,
            "x-ms-lease-status": "unlocked",
            "x-ms-lease-state": "available",
            "x-ms-server-encrypted": "true",
            "x-ms-access-tier": "Hot",
            "x-ms-access-tier-inferred": "true",
            "Accept-Ranges": "bytes",
            **{f"x-ms-meta-{k}": v for k, v in found.metadata.items()},
        }
        return 200, headers, b""

    def _put_blob(self, call: _Call) -> Answer:
        if call.headers.get("if-none-match") == "*" and call.blob in call.blobs:
            return _error(409, "BlobAlreadyExists", "PUT")
        if "content-md5" in call.headers and call.headers["content-md5"] != _md5(call.body):
            return _error(400, "Md5Mismatch", "PUT")
        blob = call.blobs[call.blob] = _new_blob(call.body, _metadata(call.headers))
        return 201, {**_blob_headers(blob), "Content-MD5": _md5(call.body), **_written()}, b""

    def _put_block(self, call: _Call) -> Answer:
        block_id = call.query.get("blockid", [""])[0]
        if not block_id:
            return _error(400, "InvalidQueryParameterValue", "PUT")
        if "content-md5" in call.headers and call.headers["content-md5"] != _md5(call.body):
            return _error(400, "Md5Mismatch", "PUT")
        self._staged.setdefault((call.container, call.blob), {})[block_id] = call.body
        return 201, {"Content-MD5": _md5(call.body), **_written()}, b""

    def _put_block_list(self, call: _Call) -> Answer:
        if call.headers.get("if-none-match") == "*" and call.blob in call.blobs:
            return _error(409, "BlobAlreadyExists", "PUT")
        staged = self._staged.get((call.container, call.blob), {})
        try:
            ids = [element.text or "" for element in ET.fromstring(call.body)]
        except ET.ParseError:
            return _error(400, "InvalidXmlDocument", "PUT")
        if any(block not in staged for block in ids):
            return _error(400, "InvalidBlockList", "PUT")
        data = b"".join(staged[block] for block in ids)
        blob = call.blobs[call.blob] = _new_blob(data, _metadata(call.headers))
        self._staged.pop((call.container, call.blob), None)
        return 201, {**_blob_headers(blob), **_written()}, b""

    def _set_metadata(self, call: _Call) -> Answer:
        found = call.blobs.get(call.blob)
        if found is None:
            return _error(404, "BlobNotFound", "PUT")
        found.metadata = _metadata(call.headers)
        found.etag = _etag()
        return 200, {**_blob_headers(found), **_written()}, b""


def _operation(method: str, comp: str, headers: dict[str, str]) -> str:
    if method == "HEAD" and comp == "":
        return "get_properties"
    if method != "PUT":
        return ""
    if comp == "" and headers.get("x-ms-blob-type") == "BlockBlob":
        return "put_blob"
    return {"block": "put_block", "blocklist": "put_block_list", "metadata": "set_metadata"}.get(
        comp, ""
    )


def _md5(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # the REST contract's checksum


def _etag() -> str:
    return f'"0x{secrets.token_hex(8).upper()}"'


def _now() -> str:
    return formatdate(usegmt=True)


def _new_blob(data: bytes, metadata: dict[str, str]) -> Blob:
    return Blob(data=data, metadata=metadata, etag=_etag(), created=_now())


def _metadata(headers: dict[str, str]) -> dict[str, str]:
    return {k[len("x-ms-meta-") :]: v for k, v in headers.items() if k.startswith("x-ms-meta-")}


def _blob_headers(blob: Blob) -> dict[str, str]:
    return {"ETag": blob.etag, "Last-Modified": _now()}


def _written() -> dict[str, str]:
    return {"x-ms-request-server-encrypted": "true"}


def _error(status: int, code: str, method: str) -> Answer:
    body = b""
    if method != "HEAD":
        body = (
            '<?xml version="1.0" encoding="utf-8"?><Error><Code>'
            f"{code}</Code><Message>{code}\nRequestId:{secrets.token_hex(8)}</Message></Error>"
        ).encode()
    return status, {"x-ms-error-code": code, "Content-Type": "application/xml"}, body


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    store: FakeBlobService

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the requests are recorded, not printed."""

    def _serve(self) -> None:
        url = urlparse(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.store.handle(self.command, url.path, parse_qs(url.query), headers, body)
        if answer is None:
            self.close_connection = True
            self.connection.shutdown(2)  # mid-request, as a broken connection does
            return
        status, out, payload = answer
        self.send_response(status)
        for key, value in {
            **out,
            "x-ms-request-id": secrets.token_hex(8),
            "x-ms-version": headers.get("x-ms-version", ""),
            "Date": _now(),
        }.items():
            self.send_header(key, value)
        if "Content-Length" not in out:
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_HEAD = _serve
    do_PUT = _serve
    do_GET = _serve
    do_POST = _serve
    do_DELETE = _serve
