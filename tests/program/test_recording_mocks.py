"""The program tests' mocks refuse what they do not model, so nothing passes as a silent blank."""

from __future__ import annotations

import pytest
from pulumi.runtime.mocks import MockCallArgs, MockResourceArgs

from tests.program.mock_program import CLIENT_CONFIG, SUBSCRIPTION_ID, RecordingMocks, UnmockedError


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
