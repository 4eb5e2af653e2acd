"""Rollback by revert under v2, through the providers on azure-ai-ml's real operations against
the fake ARM service.

Component versions and deployments are named by content, and both outlive the stack's state
(versions are archived, not deleted; replaced deployments stay for rollback until pruned). A
revert therefore asks for objects that still exist: this stack's, with the same content, are
adopted (an archived pipeline component restored); another stack's, or different content behind
the same name, are refused with the name and what to do, and left untouched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from azure.ai.ml import MLClient

from infra.definitions.loader import LoadedPipeline
from infra.provider.azureml_v2.deployment import BatchDeploymentProvider
from infra.provider.azureml_v2.dynamic import (
    DefaultDeploymentProvider,
    PipelineComponentProvider,
    WorkspaceProps,
)
from infra.provider.azureml_v2.plan import deployment_name, plan_pipeline
from infra.provider.azureml_v2.service import (
    COMPONENT_TAG,
    OWNER_TAG,
    NotAdoptable,
    V2Service,
    Workspace,
)
from tests.azureml_v2.fake_arm import FakeArm, FakeCredential
from tests.azureml_v2.v2_fixtures import IMAGES, TWO_STEPS

WS = {"subscription_id": "sub", "resource_group": "rg", "workspace_name": "ws"}
OWNER = "proj/dev"
ENDPOINT = "demo-ep"
ENDPOINT_PATH = f"/batchEndpoints/{ENDPOINT}"


def _factory(arm: FakeArm) -> Callable[[WorkspaceProps], V2Service]:
    def service(props: WorkspaceProps) -> V2Service:
        ids = (props.subscription_id, props.resource_group, props.workspace_name)
        return V2Service(
            Workspace(*ids), lambda ws: MLClient(FakeCredential(), *ids, transport=arm)
        )

    return service


def _arm() -> FakeArm:
    endpoint = {"location": "westeurope", "properties": {"authMode": "AADToken"}, "tags": {}}
    return FakeArm(objects={ENDPOINT_PATH: endpoint})


class Stack:
    """One pipeline's v2 resources as the engine drives them, with the state it keeps."""

    def __init__(
        self,
        arm: FakeArm,
        write: Callable[..., LoadedPipeline],
        monkeypatch: pytest.MonkeyPatch,
        owner: str = OWNER,
        retention: int = 2,
    ) -> None:
        self.arm, self.write, self.owner, self.retention = arm, write, owner, retention
        self.monkeypatch = monkeypatch
        self.components = PipelineComponentProvider(_factory(arm))
        self.deployments = BatchDeploymentProvider(_factory(arm))
        self.switch = DefaultDeploymentProvider(_factory(arm))
        self.component: dict[str, Any] | None = None
        self.deployment: dict[str, Any] | None = None
        self.default: dict[str, Any] | None = None

    def up(self, script: str) -> tuple[str, str]:
        """`pulumi up` of the definition with this train script: returns the pipeline
        component id and the deployment made default."""
        loaded = self.write(
            TWO_STEPS, {"steps/prep/prep.py": "print(1)\n", "steps/train/train.R": script}
        )
        self.monkeypatch.chdir(loaded.folder.parents[1])
        plan = plan_pipeline(loaded, IMAGES)
        inputs = {
            **WS,
            "pipeline": "demo",
            "code_root": "pipeline_defs/demo",
            "component": plan.component,
            "version": plan.version,
            "images": dict(IMAGES),
            "environments": {"training": "azureml:amlpipe-training:1"},
            "steps": {s.node: {"version": s.version} for s in plan.steps},
            "owner": self.owner,
        }
        # The component: a new version replaces (create the new, then delete = archive the old).
        old_component = self.component
        if old_component is None or old_component["version"] != plan.version:
            self.component = self.components.create(inputs).outs
            if old_component is not None:
                self.components.delete(old_component["component_id"], old_component)
        assert self.component is not None
        # The deployment: a new name is a new resource; the old one leaves the state only.
        name = deployment_name(plan.version)
        deployment = {
            **WS,
            "endpoint": ENDPOINT,
            "deployment": name,
            "component_id": self.component["component_id"],
            "compute": "cpu-cluster",
            "owner": self.owner,
            "tags": {"amlpipe-version": plan.version},
        }
        if self.deployment is None or self.deployment["deployment"] != name:
            self.deployment = self.deployments.create(deployment).outs
            # (the replaced deployment's delete keeps it on Azure)
        switch = {
            **WS,
            "endpoint": ENDPOINT,
            "deployment": name,
            "version_retention": self.retention,
            "owner": self.owner,
        }
        if self.default is None:
            self.default = self.switch.create(switch).outs
        else:
            self.default = self.switch.update(f"{ENDPOINT}/default", self.default, switch).outs
        return self.component["component_id"], name


@pytest.fixture
def stack(
    write_pipeline: Callable[..., LoadedPipeline], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Stack]]:
    def make(arm: FakeArm, **kwargs: Any) -> Stack:
        return Stack(arm, write_pipeline, monkeypatch, **kwargs)

    yield make


def _deployments(arm: FakeArm) -> set[str]:
    prefix = f"{ENDPOINT_PATH}/deployments/"
    return {k[len(prefix) :] for k in arm.objects if k.startswith(prefix)}


def _default(arm: FakeArm) -> str:
    return str(arm.objects[ENDPOINT_PATH]["properties"]["defaults"]["deploymentName"])


def test_a_revert_adopts_the_kept_deployment_and_restores_the_archived_component(
    stack: Callable[..., Stack],
) -> None:
    arm = _arm()
    demo = stack(arm)
    component_a, deployment_a = demo.up("print('a')\n")
    component_b, deployment_b = demo.up("print('b')\n")
    assert _deployments(arm) == {deployment_a, deployment_b} and _default(arm) == deployment_b
    pipeline_a = "/components/demo/versions/" + component_a.rsplit("/", 1)[1]
    assert arm.objects[pipeline_a]["properties"]["isArchived"] is True

    arm.requests.clear()
    again_a, again_deployment = demo.up("print('a')\n")
    assert (again_a, again_deployment) == (component_a, deployment_a)
    assert demo.deployment is not None and demo.deployment["adopted"] is True
    # Nothing created: the archived pipeline component restored (the replaced one archived),
    # the kept deployment adopted as it is, the default switched back.
    pipeline_b = "/components/demo/versions/" + component_b.rsplit("/", 1)[1]
    assert arm.writes() == [("PUT", pipeline_a), ("PUT", pipeline_b), ("PUT", ENDPOINT_PATH)]
    assert arm.objects[pipeline_a]["properties"]["isArchived"] is False
    assert arm.objects[pipeline_b]["properties"]["isArchived"] is True
    assert _default(arm) == deployment_a
    assert _deployments(arm) == {deployment_a, deployment_b}  # both within the retention
    assert arm.unexpected == []


@pytest.mark.parametrize("retention", [1, 2, 3])
def test_pruning_never_deletes_the_version_being_reverted_to(
    stack: Callable[..., Stack], retention: int
) -> None:
    arm = _arm()
    demo = stack(arm, retention=retention)
    seen: list[str] = []
    for script in ("a", "b", "c", "a", "b", "a", "a"):
        _, deployment = demo.up(f"print('{script}')\n")
        seen = [deployment, *(d for d in seen if d != deployment)]
        assert _default(arm) == deployment
        # Exactly the newest `retention` deployments exist, the current one among them.
        assert _deployments(arm) == set(seen[:retention])
    assert arm.unexpected == []


def _foreign_deployment(arm: FakeArm, name: str, owner: str | None, component: str) -> None:
    arm.objects[f"{ENDPOINT_PATH}/deployments/{name}"] = {
        "location": "westeurope",
        "tags": {
            **({OWNER_TAG: owner} if owner else {}),
            COMPONENT_TAG: component.split("/components/")[1].replace("/versions/", ":"),
        },
        "properties": {
            "deploymentConfiguration": {
                "deploymentConfigurationType": "PipelineComponent",
                "componentId": {"referenceType": "Id", "assetId": component},
                "settings": {},
            }
        },
    }


@pytest.mark.parametrize("owner", ["proj/prod", None], ids=["another-stack", "no-owner"])
def test_a_deployment_of_the_same_name_owned_elsewhere_is_refused_and_left_alone(
    stack: Callable[..., Stack], owner: str | None
) -> None:
    arm = _arm()
    demo = stack(arm)
    loaded_plan_name = None
    # Learn the deployment name the definition gets, then let someone else hold it.
    probe = stack(FakeArm(objects={ENDPOINT_PATH: dict(_arm().objects[ENDPOINT_PATH])}))
    component, loaded_plan_name = probe.up("print('a')\n")
    _foreign_deployment(arm, loaded_plan_name, owner, component)
    before = dict(arm.objects[f"{ENDPOINT_PATH}/deployments/{loaded_plan_name}"])
    with pytest.raises(NotAdoptable) as refused:
        demo.up("print('a')\n")
    message = str(refused.value)
    assert f"batch deployment {loaded_plan_name!r} of endpoint {ENDPOINT!r}" in message
    assert f"owner: {owner or 'none recorded'}" in message
    assert "az ml batch-deployment delete" in message
    assert arm.objects[f"{ENDPOINT_PATH}/deployments/{loaded_plan_name}"] == before
    assert "defaults" not in arm.objects[ENDPOINT_PATH]["properties"]  # never switched to it


def test_our_deployment_of_the_same_name_deploying_something_else_is_refused(
    stack: Callable[..., Stack],
) -> None:
    arm = _arm()
    probe = stack(FakeArm(objects={ENDPOINT_PATH: dict(_arm().objects[ENDPOINT_PATH])}))
    component, name = probe.up("print('a')\n")
    other = component.rsplit("/", 1)[0] + "/0123456789abcdef"
    _foreign_deployment(arm, name, OWNER, other)
    short = component.split("/components/")[1].replace("/versions/", ":")
    with pytest.raises(NotAdoptable, match=f"deploys demo:0123456789abcdef, not {short}"):
        stack(arm).up("print('a')\n")
    assert "defaults" not in arm.objects[ENDPOINT_PATH]["properties"]


def test_a_component_version_another_stack_registered_is_refused_and_left_alone(
    stack: Callable[..., Stack],
) -> None:
    arm = _arm()
    stack(arm, owner="proj/prod").up("print('a')\n")
    stored = {k: v for k, v in arm.objects.items() if k.startswith("/components/")}
    arm.requests.clear()
    with pytest.raises(
        NotAdoptable, match=r"component demo__prep:\w+ exists .*\(owner: proj/prod\)"
    ):
        stack(arm).up("print('a')\n")
    assert arm.writes() == []
    assert {k: v for k, v in arm.objects.items() if k.startswith("/components/")} == stored


def test_our_component_version_holding_other_content_is_refused_as_a_bug(
    stack: Callable[..., Stack], write_pipeline: Callable[..., LoadedPipeline]
) -> None:
    # What a change of the generated shape without a new SCHEME would leave behind: the same
    # name and version, stamped by this stack, with another command line.
    arm = _arm()
    files = {"steps/prep/prep.py": "print(1)\n", "steps/train/train.R": "print('a')\n"}
    plan = plan_pipeline(write_pipeline(TWO_STEPS, files), IMAGES)
    prep = dataclasses.replace(plan.steps[0], command="python other.py")
    shifted = dataclasses.replace(plan, steps=(prep, *plan.steps[1:]))
    service = _factory(arm)(WorkspaceProps(**WS))
    service.register(shifted, {"training": "azureml:amlpipe-training:1"}, OWNER)
    arm.requests.clear()
    with pytest.raises(NotAdoptable, match=r"demo__prep:\w+ exists with other content"):
        stack(arm).up("print('a')\n")
    assert arm.writes() == []
