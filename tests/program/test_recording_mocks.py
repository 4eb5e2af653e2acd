"""The program tests' mocks refuse what they do not model, so nothing passes as a silent blank, and
their recording sees each registration's parent, dependencies and options (a probe program)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from tests.program.mock_program import (
    CLIENT_CONFIG,
    REPO_ROOT,
    SUBSCRIPTION_ID,
    RecordingMocks,
    Registration,
    UnmockedError,
)


def test_unmocked_invoke_raises() -> None:
    mocks = RecordingMocks("azureml-pipelines")
    with pytest.raises(UnmockedError, match="azure-native:storage:listStorageAccountKeys"):
        mocks.call(MockCallArgs("azure-native:storage:listStorageAccountKeys", {}, ""))


def test_client_config_invoke_is_answered() -> None:
    outputs, failures = RecordingMocks("azureml-pipelines").call(
        MockCallArgs(CLIENT_CONFIG, {}, "")
    )
    assert outputs["subscriptionId"] == SUBSCRIPTION_ID
    assert failures == []


def test_resource_type_without_output_model_raises() -> None:
    mocks = RecordingMocks("azureml-pipelines")
    args = MockResourceArgs("azure-native:sql:Server", "db", {"serverName": "x"}, custom=True)
    with pytest.raises(UnmockedError, match="azure-native:sql:Server"):
        mocks.new_resource(args)


def test_foreign_component_type_raises() -> None:
    mocks = RecordingMocks("azureml-pipelines")
    with pytest.raises(UnmockedError, match="other:module:Thing"):
        mocks.new_resource(MockResourceArgs("other:module:Thing", "x", {}, custom=False))


PROBE = Path(__file__).resolve().parent / "recording_probe"
HARNESS = Path(__file__).resolve().parent / "mock_program.py"


@pytest.fixture(scope="module")
def probe() -> dict[str, Registration]:
    """The probe program run through the harness, as the program tests run the real one."""
    done = subprocess.run(
        [sys.executable, str(HARNESS), "--program", str(PROBE), str(REPO_ROOT / "Pulumi.dev.yaml")],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    registrations = [Registration(**r) for r in json.loads(done.stdout)["registrations"]]
    return {r.name: r for r in registrations}


def test_recording_sees_each_childs_parent(probe: dict[str, Registration]) -> None:
    component = probe["probe"]
    assert component.parent.split("::")[2] == "pulumi:pulumi:Stack"
    assert probe["loose-group"].parent == component.parent  # no component: the stack
    for child in ("probe-group", "probe-account", "probe-vault"):
        assert probe[child].parent == component.urn, child
    assert probe["probe-vault"].urn.split("::")[2] == (
        "azureml-pipelines:probe:Probe$azure-native:keyvault:Vault"
    )


def test_recording_sees_explicit_and_implicit_dependencies(probe: dict[str, Registration]) -> None:
    group, account, vault = probe["probe-group"], probe["probe-account"], probe["probe-vault"]
    assert group.dependencies == []
    assert account.dependencies == [group.urn]  # depends_on only
    # the group through an input derived from its id, the account through depends_on
    assert vault.dependencies == sorted([group.urn, account.urn])
    assert vault.property_dependencies == {"resourceGroupName": [group.urn]}
    assert account.property_dependencies == {}


def test_recording_sees_every_resource_option(probe: dict[str, Registration]) -> None:
    group, account, vault = probe["probe-group"], probe["probe-account"], probe["probe-vault"]
    assert (group.protect, group.retain_on_delete, group.ignore_changes) == (True, True, ["tags"])
    assert (vault.replace_on_changes, vault.delete_before_replace) == (["vaultName"], True)
    for plain in (account, probe["loose-group"]):
        assert not (plain.protect or plain.retain_on_delete or plain.delete_before_replace)
        assert plain.ignore_changes == plain.replace_on_changes == []
    assert not (vault.protect or group.delete_before_replace) and group.replace_on_changes == []


def test_recording_joins_inputs_id_and_outputs_of_the_same_registration(
    probe: dict[str, Registration],
) -> None:
    vault = probe["probe-vault"]
    assert vault.inputs == {"resourceGroupName": "rg-probe", "vaultName": "kv-probe"}
    assert vault.id == (
        f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/rg-probe"
        "/providers/Microsoft.KeyVault/vaults/kv-probe"
    )
    assert vault.outputs == {**vault.inputs, "name": "kv-probe"}
    assert probe["probe"].custom is False and probe["probe"].id is None
    assert probe["loose-group"].inputs["resourceGroupName"] == "rg-loose"


def test_a_registration_the_mocks_did_not_answer_is_refused() -> None:
    mocks = RecordingMocks("azureml-pipelines")
    mocks.forget_answer()
    with pytest.raises(UnmockedError, match="was not answered"):
        mocks.take_answer(CLIENT_CONFIG, "x")
    mocks.new_resource(MockResourceArgs("azureml-pipelines:probe:Probe", "a", {}, custom=False))
    with pytest.raises(UnmockedError, match="azureml-pipelines:probe:Probe b"):
        mocks.take_answer("azureml-pipelines:probe:Probe", "b")
