"""Credentials of the Azure ML v1 wing, every path offline: Microsoft Entra ID and the
managed-identity endpoints are served on loopback (Entra through an HTTPS proxy with a test
certificate, so azure-identity and MSAL talk to their real default host), the Azure CLI is a fake
`az` on PATH, the federated token a file. Each path is asked for the two audiences azureml uses
(ARM and Azure ML) through azureml's own authentication object."""

from __future__ import annotations

import json
import socket
import ssl
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler, ThreadingTCPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from infra.provider.azureml_v1.auth import Authenticator, choose_auth, env_flag
from infra.provider.port import BackendError
from tests.tls import self_signed_certificate

ARM_SCOPE = "https://management.core.windows.net/.default"
AML_SCOPE = "https://ml.azure.com/.default"
TENANT = "72f988bf-0000-0000-0000-00000000000a"
CLIENT = "0d9f5b8c-0000-0000-0000-00000000000c"


def _token(audience: str) -> str:
    """A JWT-shaped token naming its audience (azureml decodes tokens it is given)."""
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")

    claims = {"aud": audience, "tid": TENANT, "exp": int(time.time()) + 3600}
    return f"{part({'alg': 'none'})}.{part(claims)}.sig"


@dataclass
class Seen:
    """Requests the loopback services received."""

    requests: list[dict[str, Any]] = field(default_factory=list)
    github: list[dict[str, Any]] = field(default_factory=list)

    def scopes(self) -> list[str]:
        """The scope (or resource) of each token request, in order."""
        found = []
        for r in self.requests:
            if "scope" in r["form"]:
                found.append(r["form"]["scope"])
            elif "resource" in r["query"]:
                found.append(r["query"]["resource"])
        return found


def _handler(seen: Seen) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, body: dict[str, Any], status: int = 200) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _record(self) -> dict[str, Any]:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = parse_qs(self.rfile.read(length).decode()) if length else {}
            entry = {
                "method": self.command,
                "host": self.headers.get("Host", ""),
                "path": url.path,
                "query": {k: v[0] for k, v in parse_qs(url.query).items()},
                "form": {k: v[0] for k, v in form.items()},
                "headers": dict(self.headers),
            }
            if url.path.endswith("/token"):
                seen.requests.append(entry)
            return entry

        def do_GET(self) -> None:
            entry = self._record()
            if entry["path"] == "/github-oidc":
                # GitHub Actions' ID-token service: the federated assertion for Entra ID
                seen.github.append(entry)
                self._answer({"value": "github-assertion-1"})
                return
            if entry["path"].endswith("openid-configuration"):
                tenant = entry["path"].split("/")[1]
                base = f"https://login.microsoftonline.com/{tenant}"
                self._answer(
                    {
                        "token_endpoint": f"{base}/oauth2/v2.0/token",
                        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                        "issuer": f"{base}/v2.0",
                    }
                )
                return
            # managed identity (IMDS or App Service / Container Apps): resource in the query
            resource = entry["query"]["resource"]
            self._answer(
                {
                    "access_token": _token(resource),
                    "expires_on": str(int(time.time()) + 3600),
                    "expires_in": "3600",
                    "resource": resource,
                    "token_type": "Bearer",
                }
            )

        def do_POST(self) -> None:
            entry = self._record()
            self._answer(
                {
                    "access_token": _token(entry["form"].get("scope", "")),
                    "token_type": "Bearer",
                    "expires_in": 3600,
                    "ext_expires_in": 3600,
                }
            )

    return Handler


@dataclass
class Services:
    """The loopback services and what they saw."""

    seen: Seen
    http_url: str
    """Plain HTTP on loopback: the managed-identity endpoints."""


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    """A clean environment (no Azure variables, PATH without `az`), the loopback services, and
    an HTTPS proxy that sends every CONNECT (login.microsoftonline.com) to the fake Entra."""
    import os

    for name in list(os.environ):
        if name.startswith(
            ("AZURE_", "ARM_", "MSI_", "IDENTITY_", "IMDS_", "ACTIONS_ID_TOKEN_")
        ) or name.lower() in (
            "https_proxy",
            "http_proxy",
            "no_proxy",
            "all_proxy",
        ):
            monkeypatch.delenv(name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    seen = Seen()
    handler = _handler(seen)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    cert, key = self_signed_certificate(tmp_path, "entra", ["login.microsoftonline.com"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    class Proxy(BaseRequestHandler):
        def handle(self) -> None:
            conn: socket.socket = self.request
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                head += chunk
            if not head.startswith(b"CONNECT "):
                return
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            with context.wrap_socket(conn, server_side=True) as tls:
                handler(tls, self.client_address, plain)

    ThreadingTCPServer.daemon_threads = True
    proxy = ThreadingTCPServer(("127.0.0.1", 0), Proxy)
    for server in (plain, proxy):
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    try:
        yield Services(seen, f"http://127.0.0.1:{plain.server_address[1]}")
    finally:
        for server in (plain, proxy):
            server.shutdown()
            server.server_close()


def _both_audiences(authenticator: Authenticator) -> tuple[str, str]:
    """Ask azureml's authentication object for its two tokens, as the SDK does."""
    from azureml.core.authentication import Audience

    auth = authenticator.azureml_auth()
    return auth.get_token(Audience.ARM), auth._get_azureml_client_token()


def _audience_of(token: str) -> str:
    import base64

    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["aud"])


def test_service_principal_secret_from_arm_variables(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    monkeypatch.setenv("ARM_CLIENT_ID", CLIENT)
    monkeypatch.setenv("ARM_CLIENT_SECRET", "arm-secret-value")
    authenticator = Authenticator()
    assert authenticator.choice.kind == "service_principal"
    arm, aml = _both_audiences(authenticator)
    assert (_audience_of(arm), _audience_of(aml)) == (ARM_SCOPE, AML_SCOPE)
    assert services.seen.scopes() == [ARM_SCOPE, AML_SCOPE]
    for request in services.seen.requests:
        assert request["host"].startswith("login.microsoftonline.com")
        assert request["path"] == f"/{TENANT}/oauth2/v2.0/token"
        assert request["form"]["client_id"] == CLIENT
        assert request["form"]["client_secret"] == "arm-secret-value"
        assert request["form"]["grant_type"] == "client_credentials"


def test_workload_identity_reads_the_federated_token_file(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "federated-token"
    token_file.write_text("federated-assertion-1")
    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", str(token_file))
    authenticator = Authenticator()
    assert authenticator.choice.kind == "workload_identity"
    _both_audiences(authenticator)
    assert services.seen.scopes() == [ARM_SCOPE, AML_SCOPE]
    for request in services.seen.requests:
        assert request["form"]["client_assertion"] == "federated-assertion-1"
        assert request["form"]["client_assertion_type"].endswith("jwt-bearer")
        assert "client_secret" not in request["form"]


def test_arm_use_oidc_with_a_token_file_path(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    token_file = tmp_path / "oidc"
    token_file.write_text("github-oidc-assertion")
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    monkeypatch.setenv("ARM_CLIENT_ID", CLIENT)
    monkeypatch.setenv("ARM_USE_OIDC", "true")
    monkeypatch.setenv("ARM_OIDC_TOKEN_FILE_PATH", str(token_file))
    authenticator = Authenticator()
    assert (authenticator.choice.kind, authenticator.choice.token_file) == (
        "workload_identity",
        str(token_file),
    )
    _both_audiences(authenticator)
    assert [r["form"]["client_assertion"] for r in services.seen.requests] == [
        "github-oidc-assertion"
    ] * 2
    monkeypatch.delenv("ARM_OIDC_TOKEN_FILE_PATH")
    with pytest.raises(BackendError, match="ARM_USE_OIDC is true but neither"):
        choose_auth()


def test_arm_use_oidc_in_github_actions_asks_the_job_token_service(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What a workflow job with `permissions: id-token: write` and ARM_USE_OIDC=true has.
    monkeypatch.setenv("ARM_TENANT_ID", TENANT)
    monkeypatch.setenv("ARM_CLIENT_ID", CLIENT)
    monkeypatch.setenv("ARM_USE_OIDC", "true")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_URL", f"{services.http_url}/github-oidc?v=1")
    monkeypatch.setenv("ACTIONS_ID_TOKEN_REQUEST_TOKEN", "job-request-token")
    authenticator = Authenticator()
    assert authenticator.choice.kind == "workload_identity"
    _both_audiences(authenticator)
    assert services.seen.scopes() == [ARM_SCOPE, AML_SCOPE]
    assert [r["form"]["client_assertion"] for r in services.seen.requests] == [
        "github-assertion-1"
    ] * 2
    (asked, *_) = services.seen.github
    assert asked["query"] == {"v": "1", "audience": "api://AzureADTokenExchange"}
    assert asked["headers"]["Authorization"] == "bearer job-request-token"


def test_managed_identity_on_the_metadata_service_user_assigned_by_client_id(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # azure-identity's own override of the metadata host (169.254.169.254 on a VM)
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", services.http_url)
    monkeypatch.setenv("ARM_USE_MSI", "true")
    monkeypatch.setenv("ARM_CLIENT_ID", CLIENT)
    authenticator = Authenticator()
    assert (authenticator.choice.kind, authenticator.choice.client_id) == (
        "managed_identity",
        CLIENT,
    )
    _both_audiences(authenticator)
    assert services.seen.scopes() == [
        ARM_SCOPE[: -len("/.default")],
        AML_SCOPE[: -len("/.default")],
    ]
    for request in services.seen.requests:
        assert request["path"] == "/metadata/identity/oauth2/token"
        assert request["query"]["client_id"] == CLIENT
        assert request["headers"].get("Metadata") == "true"


def test_managed_identity_endpoint_of_app_service_and_container_apps(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Only IDENTITY_ENDPOINT/IDENTITY_HEADER: the VM metadata service must not be asked.
    monkeypatch.setenv("IDENTITY_ENDPOINT", f"{services.http_url}/msi/token")
    monkeypatch.setenv("IDENTITY_HEADER", "header-secret")
    authenticator = Authenticator()
    assert authenticator.choice.kind == "managed_identity"
    assert authenticator.choice.client_id is None  # system-assigned
    _both_audiences(authenticator)
    assert services.seen.scopes() == [
        ARM_SCOPE[: -len("/.default")],
        AML_SCOPE[: -len("/.default")],
    ]
    for request in services.seen.requests:
        assert request["path"] == "/msi/token"
        assert request["headers"].get("X-IDENTITY-HEADER") == "header-secret"


def _fake_az(tmp_path: Path, script: str) -> Path:
    az = tmp_path / "bin" / "az"
    az.write_text("#!/bin/sh\n" + script)
    az.chmod(az.stat().st_mode | stat.S_IEXEC)
    return az


def test_azure_cli_login_through_the_az_executable(services: Services, tmp_path: Path) -> None:
    log = tmp_path / "az-calls"
    _fake_az(
        tmp_path,
        f'echo "$@" >> {log}\n'
        'resource=$(echo "$@" | sed "s/.*--resource //; s/ .*//")\n'
        'printf \'{"accessToken": "cli-token-for-%s", "expiresOn": "2099-01-01 00:00:00.000000",'
        ' "expires_on": 4070908800, "tokenType": "Bearer"}\' "$resource"\n',
    )
    authenticator = Authenticator()
    assert authenticator.choice.kind == "azure_cli"
    arm, aml = _both_audiences(authenticator)
    assert (arm, aml) == (
        "cli-token-for-https://management.core.windows.net",
        "cli-token-for-https://ml.azure.com",
    )
    calls = log.read_text().splitlines()
    assert calls == [
        "account get-access-token --output json --resource https://management.core.windows.net",
        "account get-access-token --output json --resource https://ml.azure.com",
    ]
    assert services.seen.requests == []


def test_nothing_configured_and_no_az_is_one_error_saying_what_to_set(services: Services) -> None:
    with pytest.raises(BackendError) as caught:
        Authenticator()
    message = str(caught.value)
    assert "tried a service principal secret, a federated token and a managed identity" in message
    assert "`az` is not on PATH" in message
    for name in ("AZURE_CLIENT_SECRET", "ARM_USE_OIDC", "ARM_USE_MSI", "az login"):
        assert name in message


def test_az_not_logged_in_is_the_same_kind_of_error(services: Services, tmp_path: Path) -> None:
    _fake_az(tmp_path, "echo \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n")
    authenticator = Authenticator()
    with pytest.raises(BackendError) as caught:
        _both_audiences(authenticator)
    message = str(caught.value)
    assert "the Azure CLI login" in message and "az login" in message
    assert "AZURE_CLIENT_SECRET" in message


def test_boolean_variables_parse_as_booleans(
    services: Services, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _fake_az(tmp_path, "exit 1\n")
    monkeypatch.setenv("ARM_USE_MSI", "false")
    assert choose_auth().kind == "azure_cli"  # "false" is false, not "set"
    for value, expected in (("TRUE", True), ("1", True), ("no", False), ("", None)):
        monkeypatch.setenv("ARM_USE_MSI", value)
        assert env_flag("ARM_USE_MSI") is expected
    monkeypatch.setenv("ARM_USE_MSI", "maybe")
    with pytest.raises(BackendError, match=r"ARM_USE_MSI='maybe' is not a boolean"):
        choose_auth()
    # MSI explicitly off wins over an endpoint in the environment
    monkeypatch.setenv("ARM_USE_MSI", "false")
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://127.0.0.1:1/msi/token")
    assert choose_auth().kind == "azure_cli"


def test_a_partial_service_principal_is_an_error_not_a_fallback(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "s3cret")
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    with pytest.raises(BackendError, match=r"AZURE_TENANT_ID \(or ARM_TENANT_ID\) is not"):
        choose_auth()


def test_the_choice_and_the_authenticator_never_carry_the_secret(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    import copy
    import pickle

    monkeypatch.setenv("AZURE_TENANT_ID", TENANT)
    monkeypatch.setenv("AZURE_CLIENT_ID", CLIENT)
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "never-serialized-secret")
    authenticator = Authenticator()
    assert "never-serialized-secret" not in repr(authenticator.choice)
    assert b"never-serialized-secret" not in pickle.dumps(authenticator)
    assert copy.deepcopy(authenticator).choice == authenticator.choice
