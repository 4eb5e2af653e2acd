"""The real program under the recording mocks (tests/program/mock_program.py) with `api: v2`: the
resource graph and its invariants, a no-op second evaluation, the cut-over from v1 to v2 and back,
and a definition v2 cannot express stopping the program before any resource."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from infra.components.pipelines import schedule_name
from infra.definitions.loader import load_definitions
from infra.provider.azureml_v2 import entities as E
from infra.provider.azureml_v2.plan import (
    deployment_name,
    endpoint_name,
    plan_pipeline,
    trigger_spec,
)
from tests.azureml_v2.v2_fixtures import REPO_ROOT
from tests.program.mock_program import Registration

HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"
V2_STACK = REPO_ROOT / "Pulumi.v2.yaml"

ML = "azure-native:machinelearningservices:"
COMPONENT = "pulumi-python:dynamic/azureml:PipelineComponentV2"
DEFAULT = "pulumi-python:dynamic/azureml:DefaultDeploymentV2"
DEPLOYMENT = "pulumi-python:dynamic/azureml:BatchDeploymentV2"
V1_ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
V1_SCHEDULE = "pulumi-python:dynamic/azureml:PipelineSchedule"


class Run:
    """One harness run: registrations with lookups, exports."""

    def __init__(self, record: dict[str, Any]) -> None:
        self.registrations = [Registration(**r) for r in record["registrations"]]
        self.exports: dict[str, Any] = record["exports"]
        self.sdk_modules: list[str] = record["azureml_modules"]

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def by_urn(self, urn: str) -> Registration:
        (found,) = [r for r in self.registrations if r.urn == urn]
        return found


def _harness(stack_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(HARNESS), str(stack_file)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=300,
    )


def _run(stack_file: Path) -> Run:
    done = _harness(stack_file)
    assert done.returncode == 0, done.stderr
    return Run(json.loads(done.stdout))


@functools.cache
def _stack(text: str) -> Run:
    """Run a stack file with this config text (written next to nothing: config only)."""
    with tempfile.TemporaryDirectory() as folder:
        stack_file = Path(folder) / "Pulumi.cutover.yaml"
        stack_file.write_text(text, encoding="utf-8")
        return _run(stack_file)


@pytest.fixture(scope="module")
def v2() -> Run:
    return _run(V2_STACK)


def _definitions() -> list[Any]:
    return list(load_definitions([REPO_ROOT / "pipeline_defs"], REPO_ROOT).raise_if_invalid())


def test_each_definition_is_a_component_an_endpoint_a_deployment_and_its_default(v2: Run) -> None:
    definitions = _definitions()
    names = {d.spec.name for d in definitions}
    components = {c.inputs["pipeline"]: c for c in v2.of_type(COMPONENT)}
    assert set(components) == names
    assert len(v2.of_type(ML + "BatchEndpoint")) == len(names)
    assert len(v2.of_type(DEPLOYMENT)) == len(names)
    assert not v2.of_type(ML + "BatchDeployment")  # it would refuse a revert's leftover
    assert len(v2.of_type(DEFAULT)) == len(names)
    assert not v2.of_type(V1_ENDPOINT) and not v2.of_type(V1_SCHEDULE)
    image = v2.of_type("docker-build:index:Image")[0]
    for loaded in definitions:
        component = components[loaded.spec.name]
        plan = plan_pipeline(loaded, {"training": image.outputs["ref"]})
        # The versions are content hashes of the definition with the pushed image.
        assert component.inputs["version"] == plan.version
        assert component.inputs["component"] == plan.component
        assert {k: v["version"] for k, v in component.inputs["steps"].items()} == {
            s.node: s.version for s in plan.steps
        }


def test_the_image_is_an_environment_pinned_by_digest_without_credentials(v2: Run) -> None:
    image = v2.of_type("docker-build:index:Image")[0]
    (environment,) = v2.of_type(ML + "EnvironmentVersion")
    properties = environment.inputs["properties"]
    assert properties["image"] == image.outputs["ref"] and "@sha256:" in properties["image"]
    # No conda file, no build context, no registry credentials: the cluster identity pulls it.
    assert set(properties) <= {
        *("image", "osType", "description", "tags"),
        *("isAnonymous", "isArchived", "autoRebuild"),  # the SDK's own defaults
    }
    assert environment.retain_on_delete  # retained deployments still run in older images
    for component in v2.of_type(COMPONENT):
        assert component.inputs["environments"] == {"training": environment.id}
        assert component.inputs["images"] == {"training": image.outputs["ref"]}


def test_endpoints_are_stable_entra_id_only_and_their_default_is_the_newest_version(
    v2: Run,
) -> None:
    endpoints = {e.urn: e for e in v2.of_type(ML + "BatchEndpoint")}
    deployments = {d.urn: d for d in v2.of_type(DEPLOYMENT)}
    components = {c.inputs["pipeline"]: c for c in v2.of_type(COMPONENT)}
    for endpoint in endpoints.values():
        assert endpoint.inputs["properties"]["authMode"] == "AADToken"
        # The default deployment is the switch resource's, not the endpoint's.
        assert endpoint.ignore_changes == ["properties.defaults"]
    for switch in v2.of_type(DEFAULT):
        (deployment,) = [d for d in deployments.values() if d.urn in switch.dependencies]
        assert switch.inputs["deployment"] == deployment.inputs["deployment"]
        assert switch.inputs["endpoint"] == deployment.inputs["endpoint"]
        assert switch.inputs["version_retention"] == 2  # the project default
        pipeline = next(
            p
            for p, c in components.items()
            if c.outputs["component_id"] == deployment.inputs["component_id"]
        )
        assert components[pipeline].inputs["owner"] == "azureml-pipelines/v2"
        assert deployment.inputs["owner"] == "azureml-pipelines/v2"
    salt = "azureml-pipelines/amlpipe/v2/11111111-2222-3333-4444-555555555555"
    assert {e.inputs["endpointName"] for e in endpoints.values()} == {
        endpoint_name(d.spec.name, salt) for d in _definitions()
    }
    assert v2.exports["pipelineEndpoints"] == {
        d.spec.name: next(
            e.outputs["properties"]["scoringUri"]
            for e in endpoints.values()
            if e.inputs["endpointName"] == endpoint_name(d.spec.name, salt)
        )
        for d in _definitions()
    }
    assert "pipelineEndpointsPrevious" not in v2.exports


def test_schedules_match_azure_ai_mls_own_job_schedule_body(v2: Run) -> None:
    schedules = {s.inputs["name"]: s for s in v2.of_type(ML + "Schedule")}
    components = {c.inputs["pipeline"]: c for c in v2.of_type(COMPONENT)}
    expected_names = set()
    for loaded in _definitions():
        spec = loaded.spec
        component_id = components[spec.name].outputs["component_id"]
        for schedule in spec.schedules:
            key = schedule_name(spec, schedule)
            expected_names.add(key)
            registered = schedules[key].inputs["properties"]
            assert registered["isEnabled"] is schedule.enabled  # schedules run on this stack
            job = registered["action"]["jobDefinition"]
            assert (job["componentId"], job["jobType"]) == (component_id, "Pipeline")
            # The same trigger and inputs azure-ai-ml's JobSchedule would send.
            body = E.rest_body(E.job_schedule(spec, schedule, key, component_id, True))
            sdk = body["properties"]
            assert registered["trigger"] == sdk["trigger"]
            assert {k: v["value"] for k, v in job.get("inputs", {}).items()} == {
                k: v["value"] for k, v in sdk["action"]["jobDefinition"]["inputs"].items()
            }
            assert trigger_spec(schedule).start_time is None or "startTime" in registered["trigger"]
    assert set(schedules) == expected_names
    # Schedules follow the promotion: created or changed after the default switch.
    defaults = {d.urn for d in v2.of_type(DEFAULT)}
    assert all(set(s.dependencies) & defaults for s in schedules.values())


def test_the_program_loads_no_azure_ml_sdk(v2: Run) -> None:
    assert v2.sdk_modules == []


def test_a_second_evaluation_registers_identical_inputs(v2: Run) -> None:
    again = _run(V2_STACK)
    first = {r.urn: r.inputs for r in v2.registrations}
    second = {r.urn: r.inputs for r in again.registrations}
    assert first == second


def test_v2_schedules_are_paused_where_schedules_do_not_run() -> None:
    dev = _stack(
        "config:\n  azureml-pipelines:api: v2\n  azureml-pipelines:schedulesEnabled: false\n"
    )
    schedules = dev.of_type(ML + "Schedule")
    assert schedules
    assert all(s.inputs["properties"]["isEnabled"] is False for s in schedules)


def test_retention_reaches_the_switch() -> None:
    run = _stack("config:\n  azureml-pipelines:api: v2\n  azureml-pipelines:versionRetention: 4\n")
    assert {d.inputs["version_retention"] for d in run.of_type(DEFAULT)} == {4}


def _schedule_urns(run: Run, typ: str) -> set[str]:
    return {s.urn for s in run.of_type(typ)}


def test_cut_over_to_v2_pauses_v1_schedules_only_after_the_v2_ones_exist() -> None:
    run = _stack("config:\n  azureml-pipelines:api: v2\n  azureml-pipelines:apiPrevious: v1\n")
    v2_schedules = _schedule_urns(run, ML + "Schedule")
    v1_schedules = run.of_type(V1_SCHEDULE)
    assert v2_schedules and v1_schedules
    definitions = {schedule_name(d.spec, s): s for d in _definitions() for s in d.spec.schedules}
    v2_by_name = {s.inputs["name"]: s.urn for s in run.of_type(ML + "Schedule")}
    for v1 in v1_schedules:
        assert v1.inputs["enabled"] is False  # paused ...
        # ... after the v2 schedule that replaces it exists, and waiting for no other one
        assert set(v1.dependencies) & v2_schedules == {v2_by_name[v1.inputs["name"]]}
    for v2 in run.of_type(ML + "Schedule"):
        assert v2.inputs["properties"]["isEnabled"] is definitions[v2.inputs["name"]].enabled
    # Both REST URLs during the cut-over; v1 endpoints stay reachable.
    assert len(run.of_type(V1_ENDPOINT)) == len(_definitions())
    assert set(run.exports["pipelineEndpoints"]) == set(run.exports["pipelineEndpointsPrevious"])
    assert all("inference.ml.azure.com" in u for u in run.exports["pipelineEndpoints"].values())
    assert all("api.azureml.ms" in u for u in run.exports["pipelineEndpointsPrevious"].values())
    assert run.exports["api"] == "v2"


def test_switching_back_to_v1_pauses_v2_schedules_after_the_v1_ones() -> None:
    run = _stack("config:\n  azureml-pipelines:api: v1\n  azureml-pipelines:apiPrevious: v2\n")
    v1_schedules = _schedule_urns(run, V1_SCHEDULE)
    definitions = {schedule_name(d.spec, s): s for d in _definitions() for s in d.spec.schedules}
    for v1 in run.of_type(V1_SCHEDULE):
        assert v1.inputs["enabled"] is definitions[v1.inputs["name"]].enabled
    v1_by_name = {s.inputs["name"]: s.urn for s in run.of_type(V1_SCHEDULE)}
    for v2 in run.of_type(ML + "Schedule"):
        assert v2.inputs["properties"]["isEnabled"] is False
        assert set(v2.dependencies) & v1_schedules == {v1_by_name[v2.inputs["name"]]}
    assert all("api.azureml.ms" in u for u in run.exports["pipelineEndpoints"].values())


def test_at_every_step_of_a_cut_over_each_schedule_runs_under_exactly_one_api() -> None:
    # v1 -> (v2, previous v1) -> v2 -> (v1, previous v2) -> v1: per schedule, the APIs running it.
    steps = [
        "config: {}\n",
        "config:\n  azureml-pipelines:api: v2\n  azureml-pipelines:apiPrevious: v1\n",
        "config:\n  azureml-pipelines:api: v2\n",
        "config:\n  azureml-pipelines:api: v1\n  azureml-pipelines:apiPrevious: v2\n",
    ]
    definitions = {schedule_name(d.spec, s): s for d in _definitions() for s in d.spec.schedules}
    wanted = {k for k, s in definitions.items() if s.enabled}
    for text in steps:
        run = _stack(text)
        running: dict[str, int] = dict.fromkeys(wanted, 0)
        for v1 in run.of_type(V1_SCHEDULE):
            if v1.inputs["enabled"]:
                running[v1.inputs["name"]] += 1
        for v2 in run.of_type(ML + "Schedule"):
            if v2.inputs["properties"]["isEnabled"]:
                running[v2.inputs["name"]] += 1
        assert running == dict.fromkeys(wanted, 1), text


def test_a_definition_v2_cannot_express_stops_the_program_before_any_resource(
    tmp_path: Path,
) -> None:
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(
        "config:\n  azureml-pipelines:api: v2\n"
        "  azureml-pipelines:pipelineDefs: tests/azureml_v2/v2_bad_defs\n",
        encoding="utf-8",
    )
    done = _harness(stack)
    assert done.returncode != 0
    assert (
        "tests/azureml_v2/v2_bad_defs/upper_step/pipeline.yaml:7: steps[0].name: Azure ML v2: "
        "node names are lowercase" in done.stderr
    )
    assert '"registrations"' not in done.stdout


def test_deployment_names_follow_the_program_time_content_key(v2: Run) -> None:
    image = v2.of_type("docker-build:index:Image")[0]
    tag = image.inputs["tags"][0].rsplit(":", 1)[1]
    expected = {
        deployment_name(plan_pipeline(d, {"training": f"training:{tag}"}).version)
        for d in _definitions()
    }
    assert {d.inputs["deployment"] for d in v2.of_type(DEPLOYMENT)} == expected
