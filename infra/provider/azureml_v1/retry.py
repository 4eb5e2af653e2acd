"""Error classification and retries for calls to the Azure ML service.

Errors are classified by exception type and HTTP status code, never by message text: azureml's
REST clients raise msrest's `HttpOperationError` family (`ErrorResponseException`) carrying the
response, azure-identity and azure-core raise `HttpResponseError`/`ServiceRequestError`, and
network failures surface as `requests` or builtin connection errors (often as the `__cause__` of
a wrapper). Transient errors are retried by tenacity with exponential backoff and jitter, a
bounded number of times; everything else fails at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from infra.provider.port import BackendError

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 5
INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 30.0
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and what caused it (wrappers keep the network error as `__cause__`)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def status_code(exc: BaseException) -> int | None:
    """The HTTP status the service answered with, if the error carries a response."""
    for item in _chain(exc):
        code = getattr(item, "status_code", None)  # azure-core HttpResponseError
        if not isinstance(code, int):
            code = getattr(getattr(item, "response", None), "status_code", None)  # msrest
        if isinstance(code, int):
            return code
    return None


def _network_error_types() -> tuple[type[BaseException], ...]:
    # requests, msrest and azure-core come with azureml and azure-identity; imported here so this
    # module stays cheap to import.
    import requests
    from azure.core.exceptions import ServiceRequestError, ServiceResponseError
    from msrest.exceptions import ClientRequestError

    return (
        ConnectionError,
        TimeoutError,
        requests.ConnectionError,
        requests.Timeout,
        ClientRequestError,
        ServiceRequestError,
        ServiceResponseError,
    )


def is_transient(exc: BaseException) -> bool:
    """Throttling, timeouts, 5xx gateway answers and dropped connections are worth retrying."""
    code = status_code(exc)
    if code is not None:
        return code in TRANSIENT_STATUS
    network = _network_error_types()
    return any(isinstance(item, network) for item in _chain(exc))


def is_not_found(exc: BaseException) -> bool:
    """Whether the service said the object does not exist (HTTP 404)."""
    return status_code(exc) == 404


def _log_retry(what: str) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s: transient error (%r), retrying in %.1fs", what, exc, delay)

    return before_sleep


def call(
    what: str,
    fn: Callable[[], T],
    attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `fn`, retrying transient failures; any failure left becomes a BackendError that names
    `what`, the attempt count and the HTTP status (the original error is its `__cause__`)."""
    retrying = Retrying(
        stop=stop_after_attempt(attempts),
        wait=wait_exponential_jitter(
            multiplier=INITIAL_DELAY_S, max=MAX_DELAY_S, jitter=INITIAL_DELAY_S
        ),
        retry=retry_if_exception(is_transient),
        before_sleep=_log_retry(what),
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except Exception as exc:
        attempt = retrying.statistics.get("attempt_number", 1)
        code = status_code(exc)
        status = f"HTTP {code}, " if code is not None else ""
        raise BackendError(
            f"{what} failed ({status}attempt {attempt}/{attempts}): {type(exc).__name__}: {exc}"
        ) from exc
