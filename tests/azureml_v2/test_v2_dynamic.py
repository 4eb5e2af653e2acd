"""The v2 dynamic providers' create/diff/update/delete, each on azure-ai-ml's real operations
against the fake ARM service: the component registration replaces on a new version and archives
the old one; the default switch promotes the newest deployment and deletes, of this stack's, only
those beyond the retention."""

from __future__ import annotations

from typing import Any

import pytest
from azure.ai.ml import MLClient

from infra.definitions.loader import load_definitions
from infra.provider.azureml_v2.dynamic import (
    DefaultDeploymentProvider,
    PipelineComponentProvider,
    WorkspaceProps,
)
from infra.provider.azureml_v2.plan import plan_pipeline
from infra.provider.azureml_v2.service import OWNER_TAG, V2Service, Workspace
from tests.azureml_v2.fake_arm import FakeArm, FakeCredential
from tests.azureml_v2.v2_fixtures import IMAGES, REPO_ROOT

WS = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}


def _factory(arm: FakeArm) -> Any:
    def service(props: WorkspaceProps) -> V2Service:
        ids = (props.subscription_id, props.resource_group, props.workspace_name)
        return V2Service(
            Workspace(*ids), lambda ws: MLClient(FakeCredential(), *ids, transport=arm)
        )

    return service


@pytest.fixture
def churn_inputs(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.chdir(REPO_ROOT)  # the provider host runs in the project folder
    (loaded,) = [
        d
        for d in load_definitions([REPO_ROOT / "pipeline_defs"], REPO_ROOT).raise_if_invalid()
        if d.spec.name == "churn-train"
    ]
    plan = plan_pipeline(loaded, IMAGES)
    return {
        **WS,
        "pipeline": "churn-train",
        "code_root": "pipeline_defs/churn-train",
        "component": plan.component,
        "version": plan.version,
        "images": dict(IMAGES),
        "environments": {"training": "azureml:amlpipe-training:1"},
        "steps": {s.node: {"version": s.version} for s in plan.steps},
        "owner": "proj/dev",
    }


def test_component_create_registers_and_reports_the_component_id(
    churn_inputs: dict[str, Any],
) -> None:
    arm = FakeArm()
    provider = PipelineComponentProvider(_factory(arm))
    created = provider.create(churn_inputs)
    assert created.id.endswith(f"/components/churn_train/versions/{churn_inputs['version']}")
    assert created.outs["component_id"] == created.id
    assert len(created.outs["created"]) == 4  # three steps and the pipeline
    assert arm.unexpected == []


def test_component_diff_replaces_on_a_new_version_and_nothing_else(
    churn_inputs: dict[str, Any],
) -> None:
    provider = PipelineComponentProvider(_factory(FakeArm()))
    olds = {**churn_inputs, "component_id": "x", "created": []}
    assert provider.diff("x", olds, dict(churn_inputs)).changes is False
    newer = {**churn_inputs, "version": "f" * 32}
    diff = provider.diff("x", olds, newer)
    assert (diff.changes, diff.replaces, diff.delete_before_replace) == (True, ["version"], False)


def test_a_definition_changed_since_the_program_ran_is_refused(
    churn_inputs: dict[str, Any],
) -> None:
    arm = FakeArm()
    provider = PipelineComponentProvider(_factory(arm))
    with pytest.raises(RuntimeError, match="changed on disk since the program ran"):
        provider.create({**churn_inputs, "version": "0" * 32})
    assert arm.writes() == []


def test_component_delete_archives_the_version(churn_inputs: dict[str, Any]) -> None:
    arm = FakeArm()
    provider = PipelineComponentProvider(_factory(arm))
    outs = provider.create(churn_inputs).outs
    arm.requests.clear()
    provider.delete(outs["component_id"], outs)
    path = f"/components/churn_train/versions/{churn_inputs['version']}"
    assert ("PUT", path) in arm.writes()
    assert arm.objects[path]["properties"].get("isArchived") is True


def _deployment(name: str, owner: str) -> dict[str, Any]:
    return {
        "name": name,
        "location": "westeurope",
        "tags": {OWNER_TAG: owner},
        "properties": {
            "deploymentConfiguration": {
                "deploymentConfigurationType": "PipelineComponent",
                "componentId": {"referenceType": "Id", "assetId": "azureml:churn_train:1"},
                "settings": {},
            }
        },
    }


def test_the_switch_keeps_the_newest_deployments_and_prunes_only_ours() -> None:
    endpoint = "/batchEndpoints/churn-ep"
    arm = FakeArm(
        objects={
            endpoint: {"location": "westeurope", "properties": {"authMode": "AADToken"}},
            **{
                f"{endpoint}/deployments/{name}": _deployment(name, "proj/dev")
                for name in ("va", "vb", "vc")
            },
        }
    )
    provider = DefaultDeploymentProvider(_factory(arm))
    inputs = {
        **WS,
        "endpoint": "churn-ep",
        "deployment": "va",
        "version_retention": 2,
        "owner": "proj/dev",
    }
    outs = provider.create(inputs).outs
    assert (outs["kept"], outs["previous"]) == (["va"], "")
    outs = provider.update("churn-ep/default", outs, {**inputs, "deployment": "vb"}).outs
    assert outs["kept"] == ["vb", "va"] and outs["previous"] == "va"
    assert arm.objects[endpoint]["properties"]["defaults"]["deploymentName"] == "vb"
    outs = provider.update("churn-ep/default", outs, {**inputs, "deployment": "vc"}).outs
    assert outs["kept"] == ["vc", "vb"]
    # va fell out of the retention of 2: deleted; the others stay.
    assert f"{endpoint}/deployments/va" not in arm.objects
    assert f"{endpoint}/deployments/vb" in arm.objects
    # Lowering the retention prunes without a new version.
    outs = provider.update(
        "churn-ep/default", outs, {**inputs, "deployment": "vc", "version_retention": 1}
    ).outs
    assert outs["kept"] == ["vc"] and f"{endpoint}/deployments/vb" not in arm.objects
    assert arm.unexpected == []


def test_the_switch_never_deletes_another_stacks_deployment() -> None:
    endpoint = "/batchEndpoints/churn-ep"
    arm = FakeArm(
        objects={
            endpoint: {
                "location": "westeurope",
                "properties": {"authMode": "AADToken", "defaults": {"deploymentName": "vx"}},
            },
            f"{endpoint}/deployments/vx": _deployment("vx", "someone/else"),
            f"{endpoint}/deployments/vn": _deployment("vn", "proj/dev"),
        }
    )
    provider = DefaultDeploymentProvider(_factory(arm))
    inputs = {
        **WS,
        "endpoint": "churn-ep",
        "deployment": "vn",
        "version_retention": 1,
        "owner": "proj/dev",
    }
    outs = provider.create(inputs).outs
    assert outs["previous"] == "vx" and outs["kept"] == ["vn"]
    assert f"{endpoint}/deployments/vx" in arm.objects  # not ours: left alone


def test_refresh_reads_a_switch_whose_endpoint_is_gone_as_gone_and_reports_a_moved_default() -> (
    None
):
    endpoint = "/batchEndpoints/churn-ep"
    arm = FakeArm(objects={endpoint: {"location": "westeurope", "properties": {}}})
    provider = DefaultDeploymentProvider(_factory(arm))
    inputs = {**WS, "endpoint": "churn-ep", "deployment": "va", "version_retention": 2}
    outs = {**inputs, "owner": "proj/dev", "kept": ["va"], "previous": ""}
    # No default on the endpoint (reset out of band): read as '', so the next up switches again.
    read = provider.read("churn-ep/default", outs)
    assert (read.id, read.outs["deployment"]) == ("churn-ep/default", "")
    assert provider.diff("churn-ep/default", read.outs, {**outs}).changes is True
    del arm.objects[endpoint]
    assert provider.read("churn-ep/default", outs).id == ""
    assert arm.writes() == [] and arm.unexpected == []


def test_refresh_reads_a_deleted_component_version_as_gone(churn_inputs: dict[str, Any]) -> None:
    arm = FakeArm()
    provider = PipelineComponentProvider(_factory(arm))
    outs = provider.create(churn_inputs).outs
    assert provider.read(outs["component_id"], outs).id == outs["component_id"]
    del arm.objects[f"/components/churn_train/versions/{churn_inputs['version']}"]
    assert provider.read(outs["component_id"], outs).id == ""
