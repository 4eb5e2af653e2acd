"""The trigger port over ARM's Data Factory REST API (api-version 2018-06-01), via azure-core.

azure-mgmt-datafactory is not in the pinned package set (the index these machines use does not
carry it), and five calls do not need it: GET/PUT/DELETE a trigger, POST .../start and .../stop.
The token comes from the environment through azure-identity's DefaultAzureCredential (service
principal, OIDC, managed identity or `az login`), as the azure-native provider's does; nothing
is passed in, stored or returned.

Start and stop are long-running on ARM: after the POST the adapter polls the trigger until its
runtime state says so. ADF answers "Resource cannot be updated during provisioning" for a while
after a write; those calls are retried (tenacity) with backoff.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core import PipelineClient
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    HeadersPolicy,
    RetryPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest, HttpResponse
from tenacity import retry, retry_if_exception, stop_after_attempt, wait_exponential

from infra.provider.adf_port import (
    API_VERSION,
    RuntimeState,
    TriggerError,
    TriggerRecord,
    TriggerRef,
)

ARM = "https://management.azure.com"
SCOPE = f"{ARM}/.default"
STATE_WAIT_SECONDS = 120.0


def _transient(exc: BaseException) -> bool:
    # The one error classified by its text: ADF answers this transient state with the generic
    # code BadRequest (HTTP 400), which also means "your request is wrong" and must not be
    # retried; only the message tells them apart (Azure/Azure-DataFactory#612).
    return isinstance(exc, TriggerError) and "during provisioning" in str(exc)


_retry_transient = retry(
    retry=retry_if_exception(_transient),
    stop=stop_after_attempt(6),
    wait=wait_exponential(multiplier=2, max=30),
    reraise=True,
)


class RestTriggerPort:
    """ADF triggers through ARM (see the module docstring)."""

    def __init__(
        self,
        client: PipelineClient[HttpRequest, HttpResponse] | None = None,
        base_url: str = ARM,
        poll_seconds: float = 2.0,
    ) -> None:
        """ARM with the environment's credential, unless a client (and its base URL) is given:
        tests pass a plain client for an ARM stand-in on loopback."""
        self._base_url = base_url
        self._poll_seconds = poll_seconds
        if client is None:
            from azure.identity import DefaultAzureCredential

            client = PipelineClient(
                ARM,
                policies=[
                    HeadersPolicy(),
                    UserAgentPolicy(user_agent="azureml-pipelines"),
                    RetryPolicy(),
                    BearerTokenCredentialPolicy(DefaultAzureCredential(), SCOPE),
                ],
            )
        self._client = client

    def _send(self, method: str, ref: TriggerRef, suffix: str = "", body: Any = None) -> Any:
        request = HttpRequest(
            method,
            f"{self._base_url}{ref.arm_path()}{suffix}",
            params={"api-version": API_VERSION},
            json=body,
        )
        response = self._client.send_request(request)
        if response.status_code == 404 and method in ("GET", "DELETE"):
            return None
        if response.status_code >= 400:
            try:
                error = response.json().get("error", {})
            except ValueError:
                error = {}
            raise TriggerError(
                str(error.get("code") or response.status_code),
                str(error.get("message") or response.text()),
            )
        return response.json() if response.text() else None

    def get(self, ref: TriggerRef) -> TriggerRecord | None:
        """The trigger, or None."""
        body = self._send("GET", ref)
        if body is None:
            return None
        properties = dict(body.get("properties") or {})
        state = RuntimeState(properties.pop("runtimeState", RuntimeState.STOPPED.value))
        return TriggerRecord(str(body.get("id") or ref.arm_path()), properties, state)

    @_retry_transient
    def put(self, ref: TriggerRef, properties: dict[str, Any]) -> TriggerRecord:
        """Create or replace the trigger."""
        self._send("PUT", ref, body={"properties": properties})
        record = self.get(ref)
        if record is None:
            raise TriggerError("TriggerNotFound", f"trigger {ref.name!r} missing after PUT")
        return record

    @_retry_transient
    def delete(self, ref: TriggerRef) -> None:
        """Delete the trigger (absent is fine)."""
        self._send("DELETE", ref)

    def start(self, ref: TriggerRef) -> None:
        """Start the trigger and wait until ADF reports it started."""
        self._switch(ref, "/start", RuntimeState.STARTED)

    def stop(self, ref: TriggerRef) -> None:
        """Stop the trigger and wait until ADF reports it stopped."""
        self._switch(ref, "/stop", RuntimeState.STOPPED)

    @_retry_transient
    def _switch(self, ref: TriggerRef, suffix: str, state: RuntimeState) -> None:
        self._send("POST", ref, suffix)
        deadline = time.monotonic() + STATE_WAIT_SECONDS
        while True:
            record = self.get(ref)
            if record is not None and record.runtime_state is state:
                return
            if time.monotonic() > deadline:
                raise TriggerError(
                    "TriggerStateTimeout",
                    f"trigger {ref.name!r} did not reach {state.value} within "
                    f"{STATE_WAIT_SECONDS:.0f}s",
                )
            time.sleep(self._poll_seconds)
