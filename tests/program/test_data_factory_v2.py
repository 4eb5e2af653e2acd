"""Data Factory on Azure ML v2 stacks, under the real program and mocks.

ADF's Azure ML activity runs v1 assets only, so on a v2 stack each ADF pipeline invokes the batch
endpoint over REST as the factory identity, follows the job it started through ARM until it
ends, and fails unless it completed. What is real here: the program, azure-native's argument
types (their wire names), azure-ai-ml's own invocation serializer and status/API constants,
against which the ADF body and loop are checked. ADF itself (its expression evaluation) is not
reachable offline: `_adf_evaluate` below evaluates only the expression forms the component
writes, and fails on anything else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from infra.components.data_factory import (
    ARM_ENDPOINT,
    AZUREML_AUDIENCE,
    JOB_TERMINAL_STATUSES,
    JOBS_API_VERSION,
    STATUS_VARIABLE,
)
from infra.definitions import LoadedPipeline, load_definitions
from infra.provider.azureml_v2.plan import parameter_port, port_value
from tests.program.mock_program import Registration
from tests.program.pulumi_config import REPO_ROOT
from tests.program.test_program_under_mocks import Run, run_stack

_PIPELINE = "azure-native:datafactory:Pipeline"
_LINKED = "azure-native:datafactory:LinkedService"
_ROLE = "azure-native:authorization:RoleAssignment"
_BATCH_ENDPOINT = "azure-native:machinelearningservices:BatchEndpoint"
_DEFAULT = "pulumi-python:dynamic/azureml:DefaultDeploymentV2"
_V1_ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
_WORKSPACE = "azure-native:machinelearningservices:Workspace"
FACTORY = "  azureml-pipelines:dataFactory:\n    name: amlpipe-adf\n"


def _definitions() -> dict[str, LoadedPipeline]:
    loaded = load_definitions([REPO_ROOT / "pipeline_defs"]).raise_if_invalid()
    return {d.spec.name: d for d in loaded}


def _stack(folder: Path, stack: str, base: str, extra: str = "") -> Path:
    text = (REPO_ROOT / base).read_text(encoding="utf-8")
    if "config:" not in text:
        text += "config:\n"
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text(text + FACTORY + extra, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def stacks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Run]:
    """v2 with a factory; the two cut-over stacks (v1 -> v2 and back) with the same factory."""
    folder = tmp_path_factory.mktemp("stacks")
    return {
        "v2": run_stack(_stack(folder, "v2adf", "Pulumi.v2.yaml")),
        "to-v2": run_stack(
            _stack(folder, "tovtwo", "Pulumi.v2.yaml", "  azureml-pipelines:apiPrevious: v1\n")
        ),
        "back-to-v1": run_stack(
            _stack(
                folder,
                "backtov1",
                "Pulumi.dev.yaml",
                "  azureml-pipelines:api: v1\n  azureml-pipelines:apiPrevious: v2\n",
            )
        ),
    }


def _adf_pipelines(run: Run) -> dict[str, Registration]:
    prefix = f"{run.settings.name_prefix}-{run.stack}-"
    return {p.inputs["pipelineName"].removeprefix(prefix): p for p in run.of_type(_PIPELINE)}


def _activities(pipeline: Registration) -> dict[str, dict[str, Any]]:
    """Every activity of the pipeline by name, nested ones (loop, branches) included."""
    found: dict[str, dict[str, Any]] = {}

    def walk(activities: list[dict[str, Any]]) -> None:
        for activity in activities:
            assert activity["name"] not in found, f"activity name {activity['name']} twice"
            found[activity["name"]] = activity
            for key in ("activities", "ifTrueActivities", "ifFalseActivities"):
                walk(activity.get(key) or [])

    walk(pipeline.inputs["activities"])
    return found


def _v2_endpoint_of(run: Run, pipeline: str) -> Registration:
    (endpoint,) = [
        e for e in run.of_type(_BATCH_ENDPOINT) if e.name.endswith(f"-{pipeline}-endpoint")
    ]
    return endpoint


def test_each_v2_pipeline_invokes_its_batch_endpoint_as_the_factory_identity(
    stacks: dict[str, Run],
) -> None:
    definitions = _definitions()
    for key in ("v2", "to-v2"):
        run = stacks[key]
        pipelines = _adf_pipelines(run)
        assert set(pipelines) == set(definitions)
        # No v1 activity, so no AzureMLService linked service either.
        assert run.of_type(_LINKED) == []
        for name, pipeline in pipelines.items():
            assert [a["name"] for a in pipeline.inputs["activities"]] == [
                "invoke",
                "wait-for-job",
                "check-outcome",
            ]
            invoke = pipeline.inputs["activities"][0]
            assert invoke["type"] == "WebActivity" and invoke["method"] == "POST"
            # The scoring URI the BatchEndpoint reported (an output): its default deployment runs.
            endpoint = _v2_endpoint_of(run, name)
            assert invoke["url"] == endpoint.outputs["properties"]["scoringUri"]
            assert "azureml-model-deployment" not in invoke["headers"]
            # The factory's managed identity, for the audience batch endpoints accept: no secret.
            assert invoke["authentication"] == {"type": "MSI", "resource": AZUREML_AUDIENCE}
            # A retried POST would start a second job.
            assert invoke["policy"]["retry"] == 0


def test_a_v2_pipeline_waits_for_the_role_and_the_default_deployment(
    stacks: dict[str, Run],
) -> None:
    run = stacks["v2"]
    (role,) = [r for r in run.of_type(_ROLE) if r.name.startswith("adf-")]
    for name, pipeline in _adf_pipelines(run).items():
        (default,) = [d for d in run.of_type(_DEFAULT) if d.name.endswith(f"-{name}-default")]
        # An endpoint refuses invocations until it has a default deployment, and the factory's
        # calls fail until its identity holds the role.
        assert default.urn in pipeline.dependencies
        assert role.urn in pipeline.dependencies


def _adf_evaluate(value: Any, parameters: dict[str, Any]) -> Any:
    """ADF's evaluation of the expressions the component writes into a body, with the pipeline's
    parameter values; any other `@` expression fails the test."""
    if isinstance(value, dict):
        return {k: _adf_evaluate(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_adf_evaluate(v, parameters) for v in value]
    if not isinstance(value, str) or not value.startswith("@"):
        return value
    if match := re.fullmatch(r"@pipeline\(\)\.parameters\.(\w+)", value):
        return parameters[match[1]]
    if match := re.fullmatch(r"@if\(pipeline\(\)\.parameters\.(\w+), '(\w+)', '(\w+)'\)", value):
        return match[2] if parameters[match[1]] else match[3]
    raise AssertionError(f"unexpected ADF expression in the body: {value}")


def _sdk_invocation(loaded: LoadedPipeline, values: dict[str, Any]) -> dict[str, Any]:
    """The body `MLClient.batch_endpoints.invoke(inputs=..., experiment_name=...)` posts for these
    parameter values (azure-ai-ml's own schema, as its invoke builds it)."""
    from azure.ai.ml import Input
    from azure.ai.ml._schema._deployment.batch.batch_job import BatchJobSchema
    from azure.ai.ml.constants._common import BASE_PATH_CONTEXT_KEY, PARAMS_OVERRIDE_KEY
    from azure.ai.ml.constants._endpoint import EndpointYamlFields

    spec = loaded.spec
    inputs = {
        key: Input(type=_port_type(loaded, key), default=port_value(param.type, values[key]))
        for key, param in spec.parameters.items()
    }
    overrides: list[dict[str, Any]] = []
    if inputs:
        overrides.append({EndpointYamlFields.BATCH_JOB_INPUT_DATA: inputs})
    overrides.append({EndpointYamlFields.BATCH_JOB_PROPERTIES: {"experimentName": spec.experiment}})
    job = BatchJobSchema(
        context={BASE_PATH_CONTEXT_KEY: Path("."), PARAMS_OVERRIDE_KEY: overrides}
    ).load(data={})
    return {"properties": job}


def _port_type(loaded: LoadedPipeline, key: str) -> str:
    """The v2 pipeline input type of parameter `key` (as the pipeline component declares it)."""
    param = loaded.spec.parameters[key]
    return parameter_port(key, param.type, param.default, "").type


@pytest.mark.parametrize("with_defaults", [True, False], ids=["defaults", "other-values"])
def test_the_invocation_is_what_azure_ai_ml_sends_for_the_same_values(
    stacks: dict[str, Run], with_defaults: bool
) -> None:
    definitions = _definitions()
    for name, pipeline in _adf_pipelines(stacks["v2"]).items():
        loaded = definitions[name]
        values = {k: p.default for k, p in loaded.spec.parameters.items()}
        if not with_defaults:
            # Values a trigger or a caller would pass: flipped booleans, other numbers and text.
            values = {
                k: (
                    not v
                    if isinstance(v, bool)
                    else v * 3 + 1
                    if not isinstance(v, str)
                    else v + "x"
                )
                for k, v in values.items()
            }
        body = _adf_evaluate(pipeline.inputs["activities"][0]["body"], values)
        assert body == _sdk_invocation(loaded, values)
        # The inputs are exactly the pipeline component's (plan) inputs.
        assert set(body["properties"].get("inputData", {})) == set(loaded.spec.parameters)


def test_the_job_is_followed_until_a_final_status_of_azure_ai_ml(stacks: dict[str, Run]) -> None:
    from azure.ai.ml._restclient.arm_ml_service._configuration import (
        MachineLearningServicesMgmtClientConfiguration,
    )
    from azure.ai.ml.operations._run_history_constants import RunHistoryConstants

    assert set(JOB_TERMINAL_STATUSES) == {str(s) for s in RunHistoryConstants.TERMINAL_STATUSES}
    config = MachineLearningServicesMgmtClientConfiguration(object(), "sub")  # type: ignore[arg-type]
    assert config.api_version == JOBS_API_VERSION

    run = stacks["v2"]
    workspace = run.one(_WORKSPACE)
    for pipeline in _adf_pipelines(run).values():
        activities = _activities(pipeline)
        loop = activities["wait-for-job"]
        assert loop["type"] == "Until"
        assert loop["dependsOn"] == [{"activity": "invoke", "dependencyConditions": ["Succeeded"]}]
        statuses = ", ".join(f"'{status}'" for status in RunHistoryConstants.TERMINAL_STATUSES)
        assert loop["expression"]["value"] == (
            f"@contains(createArray({statuses}), variables('{STATUS_VARIABLE}'))"
        )
        read = activities["read-job"]
        # ARM's Jobs - Get of the job the invocation returned, as the factory identity.
        assert read["method"] == "GET"
        assert read["url"] == (
            f"{ARM_ENDPOINT}{workspace.id}/jobs/@{{activity('invoke').output.name}}"
            f"?api-version={JOBS_API_VERSION}"
        )
        assert read["authentication"] == {"type": "MSI", "resource": f"{ARM_ENDPOINT}/"}
        record = activities["record-status"]
        assert record["variableName"] == STATUS_VARIABLE
        assert record["value"] == "@activity('read-job').output.properties.status"
        outcome = activities["check-outcome"]
        assert (
            outcome["expression"]["value"]
            == f"@equals(variables('{STATUS_VARIABLE}'), 'Completed')"
        )
        (fail,) = outcome["ifFalseActivities"]
        assert fail["type"] == "Fail" and "ifTrueActivities" not in outcome


def test_every_name_an_expression_uses_exists(stacks: dict[str, Run]) -> None:
    for pipeline in _adf_pipelines(stacks["v2"]).values():
        activities = _activities(pipeline)
        text = repr(pipeline.inputs["activities"])
        for used in set(re.findall(r"activity\('([\w-]+)'\)", text)):
            assert used in activities, f"expression reads unknown activity {used}"
        for used in set(re.findall(r"variables\('(\w+)'\)", text)):
            assert used in pipeline.inputs["variables"], f"expression reads undeclared {used}"
        for activity in activities.values():
            for dependency in activity.get("dependsOn", []):
                assert dependency["activity"] in activities
        parameters = pipeline.inputs.get("parameters") or {}
        for used in set(re.findall(r"pipeline\(\)\.parameters\.(\w+)", text)):
            assert used in parameters


def test_a_cut_over_runs_only_the_active_apis_endpoints(stacks: dict[str, Run]) -> None:
    definitions = _definitions()
    # api v2 with v1 kept (first switch): one ADF pipeline per definition, calling v2 only.
    to_v2 = stacks["to-v2"]
    assert len(to_v2.of_type(_PIPELINE)) == len(definitions)
    assert all(p.inputs["activities"][0]["type"] == "WebActivity" for p in to_v2.of_type(_PIPELINE))
    # Back to v1 with v2 kept: the v1 activity again, on the v1 endpoints' id outputs.
    back = stacks["back-to-v1"]
    assert len(back.of_type(_PIPELINE)) == len(definitions)
    endpoints = {e.inputs["name"]: e for e in back.of_type(_V1_ENDPOINT)}
    for name, pipeline in _adf_pipelines(back).items():
        (activity,) = pipeline.inputs["activities"]
        assert activity["type"] == "AzureMLExecutePipeline"
        assert activity["mlPipelineEndpointId"] == endpoints[name].outputs["endpoint_id"]
        assert "variables" not in pipeline.inputs
    assert len(back.of_type(_LINKED)) == 1
    # The ADF pipeline is the same resource with the same parameters across the switch (an
    # update, not a replacement): callers and triggers see no change.
    for name in definitions:
        v1_pipeline, v2_pipeline = _adf_pipelines(back)[name], _adf_pipelines(to_v2)[name]
        assert v1_pipeline.name == v2_pipeline.name
        assert v1_pipeline.inputs["parameters"] == v2_pipeline.inputs["parameters"]


def _every_type(tmp_path: Path) -> LoadedPipeline:
    """A definition with a parameter of each type (the samples have no bool)."""
    folder = tmp_path / "defs" / "typed"
    (folder / "steps" / "run").mkdir(parents=True)
    (folder / "steps" / "run" / "run.py").write_text("print('ok')\n", encoding="utf-8")
    (folder / "pipeline.yaml").write_text(
        "name: typed\nexperiment: typed-exp\ncompute: cpu-cluster\n"
        "parameters:\n"
        "  text: {type: string, default: 'it''s \"quoted\"'}\n"
        "  count: {type: int, default: 3}\n"
        "  ratio: {type: float, default: 0.25}\n"
        "  dry_run: {type: bool, default: true}\n"
        "steps:\n"
        "  - name: run\n    kind: python\n    code: steps/run\n    script: run.py\n"
        "    args: [--text, '${{parameters.text}}', --count, '${{parameters.count}}',\n"
        "           --ratio, '${{parameters.ratio}}', --dry-run, '${{parameters.dry_run}}']\n",
        encoding="utf-8",
    )
    (loaded,) = load_definitions([tmp_path / "defs"], tmp_path).raise_if_invalid()
    return loaded


@pytest.mark.parametrize("dry_run", [True, False])
def test_every_parameter_type_reaches_the_endpoint_as_azure_ai_ml_sends_it(
    tmp_path: Path, dry_run: bool
) -> None:
    from infra.components.data_factory import invocation_body

    loaded = _every_type(tmp_path)
    values = {"text": 'it\'s "quoted"', "count": 7, "ratio": 1.5, "dry_run": dry_run}
    body = _adf_evaluate(invocation_body(loaded), values)
    assert body == _sdk_invocation(loaded, values)
    # A bool is the text v1 and the local runner pass, one of the v2 input's allowed words.
    assert body["properties"]["inputData"]["dry_run"]["value"] == str(dry_run)
