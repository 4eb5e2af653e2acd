"""A fake Azure ML ARM service behind azure-core's transport interface.

azure-ai-ml's real operations (MLClient) run against it: it keeps the objects PUT to it by ARM
path, answers GET/DELETE from them, lists code versions by content hash (as the service does, so
azure-ai-ml reuses uploaded code) and records every request. Anything it does not know is
answered 501 and recorded in `unexpected`, so a test fails on calls it did not plan for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

from azure.core.credentials import AccessToken, AccessTokenInfo
from azure.core.pipeline.transport import HttpResponse, HttpTransport

from tests.azureml_v2.fake_blob import FakeBlobService

_ARM = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.MachineLearningServices/"
    r"workspaces/(?P<workspace>[^/]+)(?P<rest>/.*)?$"
)


class FakeCredential:
    """A token credential that never talks to Entra ID."""

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        """A fixed, long-lived token."""
        return AccessToken("fake-token", 4_000_000_000)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        """A fixed, long-lived token."""
        return AccessTokenInfo("fake-token", 4_000_000_000)


class _Response(HttpResponse):
    def __init__(self, request: Any, status: int, body: Any) -> None:
        super().__init__(request, None)
        self.status_code = status
        self.reason = "OK" if status < 400 else "Error"
        self._body = b"" if body is None else json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}
        self.content_type = "application/json"

    def body(self) -> bytes:
        return self._body

    def text(self, encoding: str | None = None) -> str:
        return self._body.decode()

    def json(self) -> Any:
        return json.loads(self._body) if self._body else None

    # What azure-core's newer (azure.core.rest) pipeline reads from a response.
    @property
    def content(self) -> bytes:
        return self._body

    def read(self) -> bytes:
        return self._body

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._body

    def close(self) -> None:
        return None


@dataclass
class FakeArm(HttpTransport):
    """The in-memory service. `objects` maps ARM paths (below the workspace) to bodies."""

    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    uploaded_code: bool = True
    """Whether every code folder azure-ai-ml asks about is already uploaded (listed by hash);
    the upload itself goes to blob storage through azure-storage-blob's own transport."""
    blobs: FakeBlobService | None = None
    """With a loopback blob service, code versions are what the service does: listed by hash
    only once registered, and `startPendingUpload` hands out a new temporary container and its
    SAS on that service (azure-ai-ml then uploads there with azure-storage-blob, over HTTP).
    `uploaded_code` is ignored then."""
    code_queries: list[str] = field(default_factory=list)
    """Content hashes azure-ai-ml looked up, in order."""
    requests: list[tuple[str, str]] = field(default_factory=list)
    unexpected: list[tuple[str, str]] = field(default_factory=list)

    def __enter__(self) -> FakeArm:
        return self

    def __exit__(self, *args: Any) -> None:
        return None

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    def writes(self) -> list[tuple[str, str]]:
        """Requests that changed something (PUT, POST, PATCH, DELETE)."""
        return [(m, p) for m, p in self.requests if m != "GET"]

    def send(self, request: Any, **kwargs: Any) -> HttpResponse:
        """Answer one request."""
        url = urlparse(request.url)
        match = _ARM.match(url.path)
        rest = (match.group("rest") or "") if match else url.path
        self.requests.append((request.method, rest))
        query = parse_qs(url.query)
        if match is None:
            return self._unexpected(request, rest)
        if rest == "" and request.method == "GET":
            # The workspace itself (azure-ai-ml reads it when it registers a pipeline component).
            workspace = {"id": url.path, "name": match.group("workspace"), "location": "westeurope"}
            return _Response(request, 200, {**workspace, "properties": {}})
        if request.method == "GET" and rest.endswith("/versions") and "hash" in query:
            digest = query["hash"][0]
            self.code_queries.append(digest)
            if self.blobs is not None:
                return _Response(request, 200, {"value": self._codes_by_hash(digest)})
            if not self.uploaded_code:
                return _Response(request, 200, {"value": []})
            code = f"{url.path}/{digest[:12]}"
            self.objects[f"{rest}/{digest[:12]}"] = version = {
                "id": code,
                "name": digest[:12],
                "properties": {
                    "codeUri": f"https://store.blob.core.windows.net/code/{digest}",
                    "isAnonymous": True,
                    "properties": {},
                    "tags": {},
                },
            }
            return _Response(request, 200, {"value": [version]})
        if request.method == "POST" and rest.endswith("/startPendingUpload") and self.blobs:
            container_url, sas = self.blobs.temporary_container()
            return _Response(
                request,
                200,
                {
                    "blobReferenceForConsumption": {
                        "blobUri": container_url,
                        "credential": {"credentialType": "SAS", "sasUri": f"{container_url}?{sas}"},
                        "storageAccountArmId": "/subscriptions/0/resourceGroups/rg/providers/"
                        "Microsoft.Storage/storageAccounts/amlpipestore",
                    },
                    "pendingUploadId": container_url.rsplit("/", 1)[-1],
                    "pendingUploadType": "TemporaryBlobReference",
                },
            )
        if request.method == "GET":
            if rest in self.objects:
                # The service always answers with the object's id and name.
                named = {"id": url.path, "name": rest.rsplit("/", 1)[-1]}
                return _Response(request, 200, {**named, **self.objects[rest]})
            return _Response(request, 404, {"error": {"code": "NotFound", "message": rest}})
        if request.method == "PUT":
            body = json.loads(request.body or b"{}")
            name = rest.rstrip("/").split("/")[-1]
            if "/versions/" in rest:
                name = rest.split("/")[-3]
            stored = {
                **body,
                "id": url.path,
                "name": name,
                "properties": {**body.get("properties", {}), "provisioningState": "Succeeded"},
            }
            self.objects[rest] = stored
            return _Response(request, 200, stored)
        if request.method == "DELETE":
            self.objects.pop(rest, None)
            return _Response(request, 200, None)
        return self._unexpected(request, rest)

    def _codes_by_hash(self, digest: str) -> list[dict[str, Any]]:
        # The service finds registered code versions by content hash across names (azure-ai-ml
        # gives each anonymous code folder a random name).
        return [
            body
            for key, body in self.objects.items()
            if key.startswith("/codes/")
            and body.get("properties", {}).get("properties", {}).get("hash_sha256") == digest
        ]

    def _unexpected(self, request: Any, rest: str) -> HttpResponse:
        self.unexpected.append((request.method, rest))
        return _Response(request, 501, {"error": {"code": "NotImplemented", "message": rest}})
