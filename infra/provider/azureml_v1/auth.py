"""Credentials from the environment, through azure-identity, handed to azureml as a
`TokenAuthentication` (the SDK asks it for tokens by audience: ARM and Azure ML).

The path is chosen from the environment, with the variable names the azure-native provider reads
(`ARM_*`) as well as azure-identity's own (`AZURE_*`), in this order:

1. service principal secret: tenant, client id and client secret;
2. federated token (workload identity, OIDC): tenant, client id and `AZURE_FEDERATED_TOKEN_FILE`,
   or `ARM_USE_OIDC=true` with `ARM_OIDC_TOKEN_FILE_PATH`, the token itself in `ARM_OIDC_TOKEN`,
   or GitHub Actions' token service (`ARM_OIDC_REQUEST_URL`/`ARM_OIDC_REQUEST_TOKEN`, else the
   `ACTIONS_ID_TOKEN_REQUEST_URL`/`_TOKEN` a job with `id-token: write` gets);
3. managed identity, when `ARM_USE_MSI=true` or a managed-identity endpoint is set
   (`IDENTITY_ENDPOINT`: App Service, Container Apps, Arc; `MSI_ENDPOINT`: Cloud Shell; else the
   VM metadata service); a user-assigned identity is chosen by its client id;
4. otherwise the Azure CLI login, through the `az` executable.

A path the environment asks for is the path used: a misconfigured service principal never falls
back silently to someone's CLI login. When no path gives a token, one error says what was tried
and what to set. Nothing here keeps a secret beyond the credential object in memory: values are
read from the environment when the credential is made and never written anywhere.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from infra.provider.port import BackendError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})

HOW_TO_AUTHENTICATE = (
    "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or ARM_TENANT_ID, "
    "ARM_CLIENT_ID, ARM_CLIENT_SECRET); or AZURE_FEDERATED_TOKEN_FILE with tenant and client id "
    "(or ARM_USE_OIDC=true with ARM_OIDC_TOKEN_FILE_PATH, or in a GitHub Actions job with "
    "id-token: write); or ARM_USE_MSI=true on a managed "
    "identity (ARM_CLIENT_ID for a user-assigned one); or install the Azure CLI and run `az login`"
)


def env_flag(name: str) -> bool | None:
    """A boolean environment variable: None when unset or empty, else true/false (also 1/0,
    yes/no, on/off, any case); any other value is an error naming the variable."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise BackendError(f"environment variable {name}={raw!r} is not a boolean (use true or false)")


def _first_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


@dataclass(frozen=True)
class AuthChoice:
    """Which credential path the environment selects. Holds names and ids only: secrets and
    tokens stay in the environment (and in the credential object made from it)."""

    kind: str
    """'service_principal', 'workload_identity', 'managed_identity' or 'azure_cli'."""
    tenant_id: str | None = None
    client_id: str | None = None
    token_file: str | None = None
    """The federated token file (workload identity)."""
    source: str = ""
    """The variables that selected this path, for messages."""


def choose_auth() -> AuthChoice:
    """The credential path the environment selects (see the module docstring for the order)."""
    tenant = _first_env("AZURE_TENANT_ID", "ARM_TENANT_ID")
    client = _first_env("AZURE_CLIENT_ID", "ARM_CLIENT_ID")
    use_oidc = env_flag("ARM_USE_OIDC")
    use_msi = env_flag("ARM_USE_MSI")
    if _first_env("AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"):
        _require(tenant, client, "a client secret (AZURE_CLIENT_SECRET / ARM_CLIENT_SECRET)")
        return AuthChoice("service_principal", tenant, client, source="client secret")
    token_file = _first_env("AZURE_FEDERATED_TOKEN_FILE")
    if use_oidc:
        token_file = _first_env("ARM_OIDC_TOKEN_FILE_PATH") or token_file
        if not (token_file or _first_env("ARM_OIDC_TOKEN") or _github_oidc_request()):
            raise BackendError(
                "ARM_USE_OIDC is true but neither ARM_OIDC_TOKEN_FILE_PATH, ARM_OIDC_TOKEN, "
                "AZURE_FEDERATED_TOKEN_FILE nor a GitHub Actions token service "
                "(ARM_OIDC_REQUEST_URL and ARM_OIDC_REQUEST_TOKEN, or a job with "
                "`permissions: id-token: write`) is available"
            )
    if token_file or use_oidc:
        _require(tenant, client, "a federated token (workload identity / OIDC)")
        return AuthChoice("workload_identity", tenant, client, token_file, source="federated token")
    endpoint = _first_env("IDENTITY_ENDPOINT", "MSI_ENDPOINT")
    if use_msi or (use_msi is None and endpoint):
        return AuthChoice(
            "managed_identity",
            None,
            client,
            source="ARM_USE_MSI" if use_msi else f"managed identity endpoint {endpoint}",
        )
    return AuthChoice("azure_cli", tenant, source="no other credential in the environment")


def _github_oidc_request() -> tuple[str, str] | None:
    """GitHub Actions' ID-token service (URL, bearer token), if the environment has one."""
    url = _first_env("ARM_OIDC_REQUEST_URL", "ACTIONS_ID_TOKEN_REQUEST_URL")
    token = _first_env("ARM_OIDC_REQUEST_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN")
    return (url, token) if url and token else None


def _github_assertion() -> str:
    """A fresh federated token from GitHub Actions (short-lived: asked for at each exchange)."""
    import requests

    request = _github_oidc_request()
    if request is None:
        raise BackendError("the GitHub Actions token service is no longer in the environment")
    url, bearer = request
    answer = requests.get(
        url,
        params={"audience": "api://AzureADTokenExchange"},
        headers={"Authorization": f"bearer {bearer}"},
        timeout=30,
    )
    answer.raise_for_status()
    return str(answer.json()["value"])


def _require(tenant: str | None, client: str | None, what: str) -> None:
    missing = [
        name
        for name, value in (
            ("AZURE_TENANT_ID (or ARM_TENANT_ID)", tenant),
            ("AZURE_CLIENT_ID (or ARM_CLIENT_ID)", client),
        )
        if not value
    ]
    if missing:
        raise BackendError(f"{what} is set but {' and '.join(missing)} is not")


def make_credential(choice: AuthChoice) -> Any:
    """The azure-identity credential for a path (made from the environment, nothing sent yet)."""
    import azure.identity as identity

    # choose_auth() made sure tenant and client id are set for the paths that need them.
    tenant, client = choice.tenant_id or "", choice.client_id or ""
    if choice.kind == "service_principal":
        secret = _first_env("AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET") or ""
        return identity.ClientSecretCredential(tenant, client, secret)
    if choice.kind == "workload_identity":
        if choice.token_file:
            return identity.WorkloadIdentityCredential(
                tenant_id=tenant, client_id=client, token_file_path=choice.token_file
            )
        if _first_env("ARM_OIDC_TOKEN"):
            # The assertion itself, read when a token is needed (never copied).
            return identity.ClientAssertionCredential(
                tenant, client, lambda: os.environ["ARM_OIDC_TOKEN"]
            )
        return identity.ClientAssertionCredential(tenant, client, _github_assertion)
    if choice.kind == "managed_identity":
        kwargs = {"client_id": choice.client_id} if choice.client_id else {}
        return identity.ManagedIdentityCredential(**kwargs)
    if shutil.which("az") is None:
        raise BackendError(
            "no Azure credentials: tried a service principal secret, a federated token and a "
            "managed identity (none configured in the environment) and the Azure CLI (`az` is "
            f"not on PATH); {HOW_TO_AUTHENTICATE}"
        )
    return identity.AzureCliCredential(tenant_id=choice.tenant_id or "")


def scope_for(audience: str) -> str:
    """The OAuth scope for a resource the SDK names (`https://management.core.windows.net/` ->
    `https://management.core.windows.net/.default`)."""
    return audience.rstrip("/") + "/.default"


def _explain(choice: AuthChoice, exc: BaseException) -> str:
    tried = {
        "service_principal": "a service principal secret",
        "workload_identity": "a federated token ("
        + (choice.token_file or ("ARM_OIDC_TOKEN" if _first_env("ARM_OIDC_TOKEN") else "GitHub"))
        + ")",
        "managed_identity": "a managed identity"
        + (f" (client id {choice.client_id})" if choice.client_id else " (system-assigned)"),
        "azure_cli": "the Azure CLI login (`az account get-access-token`)",
    }[choice.kind]
    not_tried = (
        ""
        if choice.kind != "azure_cli"
        else ("; no service principal, federated token or managed identity is configured")
    )
    return (
        f"could not get an Azure token with {tried}, selected by {choice.source}{not_tried}: "
        f"{type(exc).__name__}: {exc}. To authenticate, {HOW_TO_AUTHENTICATE}"
    )


class Authenticator:
    """The credential of the selected path and the token function azureml calls with an
    audience. Tokens are cached by azure-identity; the object is never pickled with the
    provider (backends are made in the provider host, after it is unpickled)."""

    def __init__(self, choice: AuthChoice | None = None, credential: Any = None) -> None:
        self.choice = choice or choose_auth()
        self.credential = credential if credential is not None else make_credential(self.choice)

    def token_for(self, audience: str) -> str:
        """An access token for `audience` (what `TokenAuthentication` asks for)."""
        try:
            return str(self.credential.get_token(scope_for(audience)).token)
        except BackendError:
            raise
        except Exception as exc:
            raise BackendError(_explain(self.choice, exc)) from exc

    def azureml_auth(self, cloud: str = "AzureCloud") -> Any:
        """azureml's `TokenAuthentication` over this credential, for both audiences the SDK
        uses: ARM (workspace, pipelines service) and Azure ML (`_get_azureml_client_token`,
        which `TokenAuthentication` itself leaves unimplemented). The cloud is named: left
        unnamed, azureml downloads the cloud list from Azure Resource Manager on first use."""
        from azureml.core.authentication import Audience, TokenAuthentication

        class CredentialAuthentication(TokenAuthentication):
            def _get_azureml_client_token(self) -> str:
                return str(self._get_aad_token(resource=Audience.AZUREML))

        return CredentialAuthentication(self.token_for, cloud=cloud)

    def __reduce__(self) -> tuple[Callable[..., Authenticator], tuple[()]]:
        # Pickled (e.g. by a deep copy inside azureml), it is re-made from the environment: the
        # credential and its cached tokens are never serialized.
        return (Authenticator, ())
