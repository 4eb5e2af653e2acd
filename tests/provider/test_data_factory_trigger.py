"""The ADF trigger resource through the real provider host, on the local trigger store (which
enforces ADF's rules: created stopped, no update or delete while started)."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from pulumi.runtime.proto import provider_pb2

from infra.provider.adf_port import (
    LocalTriggerStore,
    RuntimeState,
    TriggerError,
    TriggerRef,
    store_path_for,
)
from tests.provider.grpc_host import ADF_TRIGGER_TYPE, Stack
from tests.provider.provider_fixtures import STORE, Project

OWNER = "azureml-pipelines:amlpipe-test"
REF = TriggerRef("00000000-0000-0000-0000-000000000000", "rg-test", "adf-test", "t-nightly")


def _recurrence(hour: int) -> dict[str, Any]:
    return {
        "frequency": "Day",
        "interval": 1,
        "startTime": "2025-01-01T00:00:00Z",
        "timeZone": "UTC",
        "schedule": {"hours": [hour], "minutes": [30]},
    }


def trigger_inputs(hour: int = 2, started: bool = True, **extra: Any) -> dict[str, Any]:
    """Inputs as the DataFactory component gives them."""
    return {
        "subscription_id": REF.subscription_id,
        "resource_group": REF.resource_group,
        "factory_name": REF.factory_name,
        "name": REF.name,
        "properties": {
            "type": "ScheduleTrigger",
            "pipelines": [
                {
                    "pipelineReference": {"referenceName": "p", "type": "PipelineReference"},
                    "parameters": {"rows": 3000, "rate": 0.25},
                }
            ],
            "typeProperties": {"recurrence": _recurrence(hour)},
        },
        "started": started,
        "owner": OWNER,
        **extra,
    }


@pytest.fixture
def triggers(project: Project) -> LocalTriggerStore:
    """The store the provider host uses (beside the local backend's store)."""
    return LocalTriggerStore(store_path_for(project.root / STORE))


def _state(triggers: LocalTriggerStore) -> RuntimeState:
    record = triggers.get(REF)
    assert record is not None
    return record.runtime_state


def test_trigger_is_started_changed_while_started_stopped_and_deleted(
    stack: Stack, triggers: LocalTriggerStore
) -> None:
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs()).op == "create"
    assert _state(triggers) is RuntimeState.STARTED
    assert stack.state["t"].outputs["runtime_state"] == "Started"
    assert stack.state["t"].id == REF.arm_path()

    # Same inputs: nothing to do, not one call (engine floats and ints compare equal).
    triggers.reset_calls()
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs()).op == "same"
    assert triggers.calls() == {}

    # A new recurrence on a started trigger: ADF refuses the write unless it is stopped first.
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(hour=4)).op == "update"
    assert triggers.calls() == {"stop": 1, "put": 1, "start": 1}
    record = triggers.get(REF)
    assert record is not None and record.runtime_state is RuntimeState.STARTED
    assert record.properties["typeProperties"]["recurrence"]["schedule"]["hours"] == [4]
    assert OWNER in record.properties["annotations"]

    # Paused (a stack with schedulesEnabled false): stopped, properties untouched.
    triggers.reset_calls()
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(hour=4, started=False)).op == "update"
    assert triggers.calls() == {"stop": 1}
    assert stack.state["t"].outputs["runtime_state"] == "Stopped"

    # Destroy a started trigger: stopped, then deleted.
    stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(hour=4))
    stack.destroy("t")
    assert triggers.get(REF) is None


def test_refresh_reads_a_trigger_stopped_out_of_band_and_up_starts_it_again(
    stack: Stack, triggers: LocalTriggerStore
) -> None:
    stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs())
    triggers.stop(REF)  # someone stopped it in the ADF studio

    refreshed = stack.refresh("t")

    assert refreshed is not None
    assert refreshed.outputs["started"] is False
    assert refreshed.outputs["runtime_state"] == "Stopped"
    diff = stack.preview_diff(ADF_TRIGGER_TYPE, "t", trigger_inputs())
    assert diff.changes == provider_pb2.DiffResponse.DIFF_SOME and not diff.replaces
    triggers.reset_calls()
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs()).op == "update"
    assert triggers.calls() == {"start": 1}
    assert _state(triggers) is RuntimeState.STARTED


def test_refresh_reads_a_recurrence_changed_out_of_band_and_up_restores_it(
    stack: Stack, triggers: LocalTriggerStore
) -> None:
    stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(started=False))
    record = triggers.get(REF)
    assert record is not None
    changed = dict(record.properties, typeProperties={"recurrence": _recurrence(9)})
    triggers.put(REF, {**changed, "runtimeState": "ignored", "pipelineCount": 1})

    refreshed = stack.refresh("t")

    assert refreshed is not None
    recurrence = refreshed.outputs["properties"]["typeProperties"]["recurrence"]
    assert recurrence["schedule"]["hours"] == [9]
    # Keys ADF adds itself are not the stack's business: read, they would be endless drift.
    assert "pipelineCount" not in refreshed.outputs["properties"]
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(started=False)).op == "update"
    record = triggers.get(REF)
    assert record is not None
    assert record.properties["typeProperties"]["recurrence"]["schedule"]["hours"] == [2]


def test_a_deleted_trigger_reads_as_gone(stack: Stack, triggers: LocalTriggerStore) -> None:
    stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(started=False))
    triggers.delete(REF)
    assert stack.refresh("t") is None


def test_create_adopts_its_own_leftover_but_not_a_foreign_trigger(
    stack: Stack, triggers: LocalTriggerStore
) -> None:
    # What an interrupted create leaves: the trigger written (with our owner), never started.
    leftover = trigger_inputs()["properties"]
    triggers.put(REF, {**leftover, "annotations": [OWNER]})
    assert stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs()).op == "create"
    assert _state(triggers) is RuntimeState.STARTED
    stack.destroy("t")

    triggers.put(REF, {**leftover, "annotations": ["someone-else"]})
    with pytest.raises(grpc.RpcError) as caught:
        stack.up(ADF_TRIGGER_TYPE, "other", trigger_inputs())
    assert "was not created by this stack" in str(caught.value.details())
    record = triggers.get(REF)
    assert record is not None and record.properties["annotations"] == ["someone-else"]


def test_renaming_a_trigger_replaces_it(stack: Stack, triggers: LocalTriggerStore) -> None:
    stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs())
    step = stack.up(ADF_TRIGGER_TYPE, "t", trigger_inputs(name="t-nightly-2"))
    assert (step.op, step.replaces) == ("replace", ["name"])
    assert triggers.get(REF) is None  # the old one was stopped and deleted
    renamed = TriggerRef(REF.subscription_id, REF.resource_group, REF.factory_name, "t-nightly-2")
    record = triggers.get(renamed)
    assert record is not None and record.runtime_state is RuntimeState.STARTED


def test_local_store_refuses_to_change_or_delete_a_started_trigger(
    triggers: LocalTriggerStore,
) -> None:
    triggers.put(REF, trigger_inputs()["properties"])
    assert _state(triggers) is RuntimeState.STOPPED  # ADF creates triggers stopped
    triggers.start(REF)
    for write in (lambda: triggers.put(REF, {}), lambda: triggers.delete(REF)):
        with pytest.raises(TriggerError) as caught:
            write()
        assert caught.value.code == "TriggerEnabledCannotUpdate"
