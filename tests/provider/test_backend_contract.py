"""The local backend (the tests' stand-in and the local stacks' backend) checked against the real
azureml SDK: the same sequence of port operations on both gives the same records, once ids are
labelled and what Azure ML v1 does not report is set aside (each exception says why)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from infra.components.pipelines import load_pipeline_definitions
from infra.definitions.recurrence import effective_recurrence
from infra.provider.azureml_v1 import retry
from infra.provider.local_backend import LocalBackend, LocalStore
from infra.provider.port import (
    Backend,
    PipelineBuild,
    RegistryIdentity,
    ScheduleSettings,
    Status,
    WorkspaceRef,
)
from tests.provider.azureml_dryrun import IDENTITY_CLIENT_ID, IDENTITY_ID, dry_run
from tests.provider.provider_fixtures import OWNER

REPO_ROOT = Path(__file__).resolve().parents[2]
SAMPLE = load_pipeline_definitions(
    REPO_ROOT / "pipeline_defs", REPO_ROOT, ["cpu-cluster"], ["training"]
)[0]


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retry, "INITIAL_DELAY_S", 0.001)
    monkeypatch.setattr(retry, "MAX_DELAY_S", 0.01)


def _build(content_hash: str) -> PipelineBuild:
    return PipelineBuild(
        SAMPLE.spec.name,
        SAMPLE.spec,
        SAMPLE.folder,
        {"training": "acrstack.azurecr.io/training:ctx-1"},
        content_hash,
        registry_identities={"cpu-cluster": RegistryIdentity(IDENTITY_ID, IDENTITY_CLIENT_ID)},
        owner=OWNER,
    )


class _Labels:
    """Ids replaced by labels in order of first appearance (each backend makes its own ids)."""

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}

    def __call__(self, value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self(getattr(value, f.name)) for f in dataclasses.fields(value)}
            if "rest_url" in fields:
                # Each backend has its own URL form; both must name the endpoint's id.
                assert value.id in value.rest_url  # type: ignore[union-attr]
                fields.pop("rest_url")
            if "recurrence" in fields:
                # Nor the parameter values of a schedule (the port says None: "not reported").
                fields.pop("parameters")
            if "experiment" in fields:
                # Azure ML v1's Schedule object does not report the experiment name.
                fields.pop("experiment")
            return (type(value).__name__, fields)
        if isinstance(value, list | tuple):
            return [self(v) for v in value]
        if isinstance(value, dict):
            return {k: self(v) for k, v in value.items()}
        if isinstance(value, str) and (value in self.ids or _looks_like_id(value)):
            return self.ids.setdefault(value, f"id{len(self.ids)}")
        if hasattr(value, "model_dump"):
            return value.model_dump()
        return value


def _looks_like_id(value: str) -> bool:
    import uuid

    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _scenario(backend: Backend) -> list[Any]:
    """Every port operation, in the order the provider uses them."""
    name = SAMPLE.spec.name
    label = _Labels()
    out: list[Any] = []
    first = backend.publish_pipeline(_build("hash-v1"))
    out.append(("published", label(first), label(backend.find_published(name))))
    endpoint = backend.create_endpoint(name, "desc", first.id, OWNER)
    out.append(("created", label(endpoint)))
    assert backend.get_endpoint(name=name) == endpoint
    second = backend.publish_pipeline(_build("hash-v2"))
    out.append(("add_default", label(backend.add_default_version(endpoint.id, second.id))))
    out.append(("set_default", label(backend.set_default_version(endpoint.id, "0"))))
    backend.disable_pipeline(second.id)
    out.append(("disabled", label(backend.get_endpoint(endpoint.id))))
    out.append(("find_published", label(backend.find_published(name))))
    backend.archive_endpoint(endpoint.id)
    archived = backend.get_endpoint(endpoint_id=endpoint.id)
    assert archived is not None and archived.name != name
    out.append(("archived", archived.status, backend.get_endpoint(name=name)))
    out.append(("reactivated", label(backend.reactivate_endpoint(endpoint.id, name))))
    recurrence = effective_recurrence(SAMPLE.spec.schedules[0])
    paused = ScheduleSettings(recurrence, "nightly", {"rows": 10}, Status.DISABLED)
    schedule = backend.create_schedule("nightly", endpoint.id, "exp", paused, OWNER)
    out.append(("schedule_paused", label(schedule)))
    active = dataclasses.replace(paused, status=Status.ACTIVE)
    out.append(("schedule_active", label(backend.update_schedule(schedule.id, active))))
    out.append(("find_schedules", label(backend.find_schedules(endpoint.id, "nightly"))))
    out.append(("missing", backend.get_schedule("no-such"), backend.get_endpoint("no-such")))
    return out


def test_local_backend_and_the_real_sdk_give_the_same_records(tmp_path: Path) -> None:
    local = LocalBackend(LocalStore(tmp_path / "store.sqlite"), WorkspaceRef("sub", "rg", "ws"))
    local_steps = _scenario(local)
    sdk_steps = _scenario(dry_run().backend)
    for mine, theirs in zip(local_steps, sdk_steps, strict=True):
        assert mine == theirs
