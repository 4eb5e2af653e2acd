"""The Pipelines component under Pulumi mocks: what it registers, with which inputs, and that an
unknown cluster or image fails before anything is registered."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pulumi
import pytest

from infra.components.pipelines import Pipelines, PipelinesArgs, load_pipeline_definitions
from infra.definitions import hashing
from infra.definitions.errors import SpecErrors
from infra.definitions.hashing import TreeDigest, pipeline_digest
from infra.provider.port import RegistryIdentity
from tests.provider.provider_fixtures import IMAGE_V1, Project

ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
SCHEDULE = "pulumi-python:dynamic/azureml:PipelineSchedule"
COMPONENT = "azureml-pipelines:pipelines:Pipelines"


class RecordingMocks(pulumi.runtime.Mocks):
    """Answers for the two dynamic resource types (and the component); anything else raises."""

    def __init__(self) -> None:
        self.registered: list[tuple[str, str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append((args.typ, args.name, dict(args.inputs)))
        if args.typ == ENDPOINT:
            endpoint_id = f"ep-{args.inputs['name']}"
            url = f"https://example.api.azureml.ms/PipelineEndpointSubmit/Id/{endpoint_id}"
            return endpoint_id, {**args.inputs, "rest_url": url, "endpoint_id": endpoint_id}
        if args.typ == SCHEDULE:
            return f"sch-{args.inputs['name']}", {**args.inputs, "schedule_id": "x"}
        if args.typ == COMPONENT:
            return "", {}
        raise AssertionError(f"unmocked resource type {args.typ}")

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[Any]]:
        raise AssertionError(f"unmocked invoke {args.token}")


@pytest.fixture
def mocks() -> RecordingMocks:
    recording = RecordingMocks()
    # Pulumi's mocks take the current event loop; a test that ran asyncio.run() before this one
    # leaves none set, so give each test its own.
    asyncio.set_event_loop(asyncio.new_event_loop())
    pulumi.runtime.set_mocks(recording, project="proj", stack="dev", preview=False)
    return recording


def _args(project: Project, **overrides: Any) -> PipelinesArgs:
    definitions = load_pipeline_definitions(
        project.root / "pipeline_defs", project.root, ["cpu-cluster"], ["training"]
    )
    values: dict[str, Any] = {
        "definitions": definitions,
        "project_root": project.root,
        "subscription_id": "sub",
        "resource_group": "rg",
        "workspace_name": "mlw",
        "image_refs": {"training": pulumi.Output.from_input(IMAGE_V1)},
        "cluster_names": frozenset({"cpu-cluster"}),
        "schedules_enabled": False,
        "version_retention": 3,
        "cluster_identities": {
            "cpu-cluster": pulumi.Output.from_input(RegistryIdentity("/id/cpu", "client-1")),
            # not used by these pipelines: not passed
            "gpu-cluster": RegistryIdentity("/id/gpu", "client-2"),
        },
        **overrides,
    }
    return PipelinesArgs(**values)


@pulumi.runtime.test
def test_one_endpoint_per_pipeline_and_a_paused_schedule_per_schedule(
    project: Project, mocks: RecordingMocks
) -> pulumi.Output[Any]:
    project.write_pipeline("other")
    component = Pipelines("pipelines", _args(project))

    def check(values: list[Any]) -> None:
        urls = values[0]
        by_type: dict[str, dict[str, dict[str, Any]]] = {}
        for typ, name, inputs in mocks.registered:
            by_type.setdefault(typ, {})[name] = inputs
        assert sorted(by_type[ENDPOINT]) == ["pipelines-demo", "pipelines-other"]
        assert sorted(by_type[SCHEDULE]) == ["pipelines-demo-nightly", "pipelines-other-nightly"]
        demo = by_type[ENDPOINT]["pipelines-demo"]
        assert (
            demo["content_hash"] == pipeline_digest(project.load(), {"training": IMAGE_V1}).digest
        )
        assert demo["images"] == {"training": IMAGE_V1}
        assert demo["registry_identities"] == {
            "cpu-cluster": {"resource_id": "/id/cpu", "client_id": "client-1"}
        }
        assert demo["steps"]["train"]["run"] == "Rscript train.R"
        assert demo["code_root"] == "pipeline_defs/demo"
        assert (demo["workspace_name"], demo["version_retention"]) == ("mlw", 3)
        # everything published records the stack that owns it
        assert demo["owner"] == {"project": "proj", "stack": "dev"}
        assert "experiment" not in demo  # a published pipeline has none: not an endpoint input
        nightly = by_type[SCHEDULE]["pipelines-demo-nightly"]
        assert nightly["enabled"] is False  # dev: created paused
        assert nightly["endpoint_id"] == "ep-demo"
        assert nightly["recurrence_text"] == "every 1 Day at 02:30 UTC"
        assert (nightly["experiment"], nightly["owner"]["stack"]) == ("demo-exp", "dev")
        assert urls == {
            "demo": "https://example.api.azureml.ms/PipelineEndpointSubmit/Id/ep-demo",
            "other": "https://example.api.azureml.ms/PipelineEndpointSubmit/Id/ep-other",
        }
        # what REST and Data Factory callers submit runs under, per pipeline
        assert component.experiments == {"demo": "demo-exp", "other": "demo-exp"}

    schedule_ids = [s.id for s in component.schedules.values()]
    return pulumi.Output.all(component.rest_urls, *schedule_ids).apply(check)


def test_unknown_cluster_fails_before_any_resource_is_registered(
    project: Project, mocks: RecordingMocks
) -> None:
    with pytest.raises(SpecErrors, match="unknown compute 'cpu-cluster'"):
        load_pipeline_definitions(
            project.root / "pipeline_defs", project.root, ["gpu-cluster"], ["training"]
        )
    args = _args(project, cluster_names=frozenset({"gpu-cluster"}), image_refs={})
    with pytest.raises(SpecErrors) as raised:
        Pipelines("pipelines", args)
    message = str(raised.value)
    assert "unknown compute 'cpu-cluster' (known clusters: gpu-cluster)" in message
    assert "unknown image 'training' (known images: none)" in message
    assert "pipeline_defs/demo/pipeline.yaml" in message
    assert mocks.registered == []


@pulumi.runtime.test
def test_each_code_tree_is_read_once_per_evaluation(
    project: Project, mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch
) -> pulumi.Output[Any]:
    project.write_pipeline("other")
    args = _args(project)
    reads: Counter[Path] = Counter()
    real_tree_digest = hashing.tree_digest

    def counting(folder: Path, ignore_file: str | None = ".amlignore") -> TreeDigest:
        reads[folder] += 1
        return real_tree_digest(folder, ignore_file)

    monkeypatch.setattr(hashing, "tree_digest", counting)
    component = Pipelines("pipelines", args)

    def check(hashes: list[str]) -> None:
        assert all(hashes)
        assert len(reads) >= 2  # both pipelines' code folders
        assert max(reads.values()) == 1, reads

    return pulumi.Output.all(*[e.content_hash for e in component.endpoints.values()]).apply(check)


def test_more_than_a_thousand_dynamic_resources_register(mocks: RecordingMocks) -> None:
    # pulumi.dynamic leaves one pickler wrapper behind per resource; without the reset this
    # raises RecursionError near the thousandth resource (500 pipelines with a schedule each).
    from infra.definitions.model import Frequency, Recurrence
    from infra.provider.port import Owner
    from infra.provider.resources import PipelineSchedule, PipelineScheduleArgs, WorkspaceArgs

    workspace = WorkspaceArgs("sub", "rg", "mlw")
    for index in range(1100):
        PipelineSchedule(
            f"s{index}",
            PipelineScheduleArgs(
                workspace=workspace,
                owner=Owner("proj", "dev"),
                name=f"s{index}",
                endpoint_id="ep",
                experiment="e",
                recurrence=Recurrence(frequency=Frequency.DAY),
            ),
        )
