"""The v2 wing's workspace calls through azure-ai-ml's real operations (MLClient) against a fake
ARM service behind azure-core's transport interface: get-or-create of content-hashed component
versions (a no-op when nothing changed, one new step and one new pipeline version for one changed
script), the endpoint's default switch, and deletion only of this stack's deployments."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from azure.ai.ml import MLClient

from infra.definitions.loader import LoadedPipeline
from infra.provider.azureml_v2 import entities as E
from infra.provider.azureml_v2.plan import plan_pipeline
from infra.provider.azureml_v2.service import OWNER_TAG, V2Service, V2ServiceError, Workspace
from tests.azureml_v2.fake_arm import FakeArm, FakeCredential
from tests.azureml_v2.v2_fixtures import IMAGES, TWO_STEPS

WS = Workspace("00000000-0000-0000-0000-000000000000", "rg", "ws")
ENVIRONMENTS = {"training": "azureml:amlpipe-training:0123abcd"}
OWNER = "azureml-pipelines/dev"


def _service(arm: FakeArm) -> V2Service:
    def client(ws: Workspace) -> Any:
        return MLClient(
            FakeCredential(),
            ws.subscription_id,
            ws.resource_group,
            ws.workspace_name,
            transport=arm,
        )

    return V2Service(WS, client)


def test_registering_creates_each_step_component_then_the_pipeline_component(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    churn = next(p for p in samples if p.spec.name == "churn-train")
    plan = plan_pipeline(churn, IMAGES)
    arm = FakeArm()
    registered = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert arm.unexpected == []
    puts = [path for method, path in arm.writes() if method == "PUT"]
    assert puts == [
        *(f"/components/{s.component}/versions/{s.version}" for s in plan.steps),
        f"/components/{plan.component}/versions/{plan.version}",
    ]
    assert registered.component_id.endswith(
        f"/workspaces/ws/components/{plan.component}/versions/{plan.version}"
    )
    # azure-ai-ml looked up each step's code folder by its content hash (one per folder).
    assert len(set(arm.code_queries)) == len(plan.steps)
    spec = arm.objects[f"/components/{plan.component}/versions/{plan.version}"]["properties"][
        "componentSpec"
    ]
    for step in plan.steps:
        node = spec["jobs"][step.node]
        assert node["componentId"].endswith(f"/components/{step.component}/versions/{step.version}")
        assert {k: v["value"] for k, v in node["inputs"].items()} == dict(step.bindings)
    prep = arm.objects[f"/components/{plan.steps[0].component}/versions/{plan.steps[0].version}"]
    prep_spec = prep["properties"]["componentSpec"]
    assert prep_spec["command"] == plan.steps[0].command
    assert prep_spec["environment"].endswith("amlpipe-training/versions/0123abcd")
    assert "/codes/" in prep_spec["code"]


def test_registering_an_unchanged_definition_again_writes_nothing(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    plan = plan_pipeline(samples[0], IMAGES)
    arm = FakeArm()
    service = _service(arm)
    first = service.register(plan, ENVIRONMENTS, OWNER)
    arm.requests.clear()
    again = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert again.created == ()
    assert again.component_id == first.component_id
    assert arm.writes() == []
    assert arm.unexpected == []


def test_one_changed_script_creates_one_step_version_and_one_pipeline_version(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    files = {"steps/prep/prep.py": "print(1)\n", "steps/train/train.R": "cat(1)\n"}
    arm = FakeArm()
    _service(arm).register(
        plan_pipeline(write_pipeline(TWO_STEPS, files), IMAGES), ENVIRONMENTS, OWNER
    )
    arm.requests.clear()
    changed = {**files, "steps/train/train.R": "cat(2)\n"}
    plan = plan_pipeline(write_pipeline(TWO_STEPS, changed), IMAGES)
    registered = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert registered.created == (
        f"demo__train:{plan.steps[1].version}",
        f"demo:{plan.version}",
    )
    assert [m for m, _ in arm.writes()] == ["PUT", "PUT"]


def _endpoint(name: str, default: str | None) -> dict[str, Any]:
    properties: dict[str, Any] = {"authMode": "AADToken", "provisioningState": "Succeeded"}
    if default:
        properties["defaults"] = {"deploymentName": default}
    return {"name": name, "location": "westeurope", "properties": properties, "tags": {}}


def test_the_default_switch_moves_the_endpoint_to_the_new_deployment_once() -> None:
    arm = FakeArm(objects={"/batchEndpoints/churn-ep": _endpoint("churn-ep", "vold")})
    service = _service(arm)
    assert service.set_default("churn-ep", "vnew") == "vold"
    stored = arm.objects["/batchEndpoints/churn-ep"]
    assert stored["properties"]["defaults"]["deploymentName"] == "vnew"
    arm.requests.clear()
    assert service.set_default("churn-ep", "vnew") == "vnew"
    assert arm.writes() == []
    assert arm.unexpected == []


def test_a_missing_endpoint_is_a_clear_error() -> None:
    arm = FakeArm()
    with pytest.raises(V2ServiceError, match="get batch endpoint nope failed"):
        _service(arm).set_default("nope", "v1")


def _deployment(name: str, owner: str | None) -> dict[str, Any]:
    plan_ref = E.component_ref("demo", "1")
    return {
        "name": name,
        "location": "westeurope",
        "tags": {OWNER_TAG: owner} if owner else {},
        "properties": {
            "deploymentConfiguration": {
                "deploymentConfigurationType": "PipelineComponent",
                "componentId": {"referenceType": "Id", "assetId": plan_ref},
                "settings": {},
            }
        },
    }


def test_only_this_stacks_deployments_are_ever_deleted() -> None:
    arm = FakeArm(
        objects={
            "/batchEndpoints/churn-ep/deployments/vmine": _deployment("vmine", "amlpipe-dev"),
            "/batchEndpoints/churn-ep/deployments/vtheirs": _deployment("vtheirs", "someone-else"),
            "/batchEndpoints/churn-ep/deployments/vuntagged": _deployment("vuntagged", None),
        }
    )
    service = _service(arm)
    assert service.delete_deployment("churn-ep", "vmine", "amlpipe-dev") is True
    assert service.delete_deployment("churn-ep", "vtheirs", "amlpipe-dev") is False
    assert service.delete_deployment("churn-ep", "vuntagged", "amlpipe-dev") is False
    assert service.delete_deployment("churn-ep", "vgone", "amlpipe-dev") is False
    assert [w for w in arm.writes()] == [("DELETE", "/batchEndpoints/churn-ep/deployments/vmine")]
    assert "/batchEndpoints/churn-ep/deployments/vtheirs" in arm.objects
    assert arm.unexpected == []
