"""Data Factory under the real program and mocks: every stack file, plus stacks written here.

A stack that names a factory gets the factory (or uses an existing one), an MSI linked service to
its workspace, the factory identity's role on the workspace and one ADF pipeline per definition
running the definition's endpoint; a stack that does not registers no Data Factory resource.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.definitions import LoadedPipeline, load_definitions
from infra.definitions.model import ParameterType
from infra.definitions.recurrence import effective_recurrence
from infra.settings import FactoryRole, parse_settings
from tests.program.mock_program import SUBSCRIPTION_ID, Registration
from tests.program.pulumi_config import (
    REPO_ROOT,
    settings_raw,
    stack_config,
    stack_files,
    stack_name,
)
from tests.program.test_program_under_mocks import Run, run_harness, run_stack

STACK_FILES = stack_files()
_FACTORY = "azure-native:datafactory:Factory"
_LINKED = "azure-native:datafactory:LinkedService"
_PIPELINE = "azure-native:datafactory:Pipeline"
_TRIGGER = "pulumi-python:dynamic/datafactory:Trigger"
_ROLE = "azure-native:authorization:RoleAssignment"
_WORKSPACE = "azure-native:machinelearningservices:Workspace"
_ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
ADF_TYPES = {
    _FACTORY,
    _LINKED,
    _PIPELINE,
    _TRIGGER,
    "azure-native:datafactory:Trigger",
    "azureml-pipelines:data_factory:DataFactory",
}


def _definitions() -> dict[str, LoadedPipeline]:
    loaded = load_definitions([REPO_ROOT / "pipeline_defs"]).raise_if_invalid()
    return {d.spec.name: d for d in loaded}


def _factory_on(stack_file: Path) -> bool:
    raw = settings_raw(stack_config(stack_file))
    return parse_settings(raw, "azureml-pipelines", stack_name(stack_file)).data_factory.enabled


FACTORY_STACKS = [p for p in STACK_FILES if _factory_on(p)]


def _write_stack(folder: Path, stack: str, body: str) -> Path:
    path = folder / f"Pulumi.{stack}.yaml"
    path.write_text("config:\n" + body, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def dev_with_factory(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """The dev stack file plus a factory: schedules paused, factory on."""
    folder = tmp_path_factory.mktemp("stacks")
    dev = (REPO_ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8")
    path = folder / "Pulumi.devadf.yaml"
    path.write_text(
        dev + "  azureml-pipelines:dataFactory:\n    name: amlpipe-devadf-adf\n", encoding="utf-8"
    )
    return run_stack(path)


def _factory_runs(dev_with_factory: Run) -> list[Run]:
    return [run_stack(p) for p in FACTORY_STACKS] + [dev_with_factory]


def test_the_repository_carries_a_stack_file_with_the_factory_on() -> None:
    assert FACTORY_STACKS, "no Pulumi.<stack>.yaml turns azureml-pipelines:dataFactory on"


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=[stack_name(p) for p in STACK_FILES])
def test_a_stack_without_the_setting_registers_no_data_factory_resource(stack_file: Path) -> None:
    if _factory_on(stack_file):
        pytest.skip(f"{stack_file.name} turns the factory on (checked below)")
    run = run_stack(stack_file)
    assert [r.name for r in run.registrations if r.type in ADF_TYPES] == []
    assert "dataFactoryName" not in run.exports
    assert "dataFactoryPipelines" not in run.exports
    # Nor does it load the datafactory SDK module (≈ 1.4 s and 34 MB at every preview).
    assert "datafactory" not in run.azure_native_services


def _factory_principal(run: Run) -> str:
    (factory,) = run.of_type(_FACTORY)
    principal: str = factory.outputs["identity"]["principalId"]
    return principal


def test_factory_has_a_system_assigned_identity_and_is_exported(dev_with_factory: Run) -> None:
    for run in _factory_runs(dev_with_factory):
        factory = run.one(_FACTORY)
        assert factory.inputs["identity"] == {"type": "SystemAssigned"}
        assert run.exports["dataFactoryName"] == factory.inputs["factoryName"]
        assert (
            factory.inputs["resourceGroupName"] == run.one(_WORKSPACE).inputs["resourceGroupName"]
        )


def test_linked_service_reaches_the_workspace_with_the_factory_identity(
    dev_with_factory: Run,
) -> None:
    for run in _factory_runs(dev_with_factory):
        workspace = run.one(_WORKSPACE)
        linked = run.one(_LINKED)
        properties = linked.inputs["properties"]
        assert properties["type"] == "AzureMLService"
        assert properties["authentication"] == "MSI"
        # No credential of any kind is stored in the linked service (or the Pulumi state).
        assert not {"servicePrincipalId", "servicePrincipalKey", "encryptedCredential"} & set(
            properties
        )
        assert properties["subscriptionId"] == SUBSCRIPTION_ID
        assert properties["resourceGroupName"] == workspace.inputs["resourceGroupName"]
        assert properties["mlWorkspaceName"] == workspace.inputs["workspaceName"]
        assert linked.inputs["factoryName"] == run.exports["dataFactoryName"]


def test_factory_identity_holds_the_data_scientist_role_on_the_workspace_only(
    dev_with_factory: Run,
) -> None:
    for run in _factory_runs(dev_with_factory):
        workspace = run.one(_WORKSPACE)
        grants = [
            r for r in run.of_type(_ROLE) if r.inputs["principalId"] == _factory_principal(run)
        ]
        role = (
            f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/"
        )
        assert [(g.inputs["scope"], g.inputs["roleDefinitionId"]) for g in grants] == [
            (workspace.id, role + FactoryRole.DATA_SCIENTIST.role_id)
        ]
        assert grants[0].inputs["principalType"] == "ServicePrincipal"


def test_each_pipeline_runs_its_endpoint_id_output_with_its_experiment(
    dev_with_factory: Run,
) -> None:
    definitions = _definitions()
    for run in _factory_runs(dev_with_factory):
        endpoints = {e.inputs["name"]: e for e in run.of_type(_ENDPOINT)}
        pipelines = _adf_pipelines(run)
        assert set(pipelines) == set(definitions)
        linked = run.one(_LINKED)
        for name, pipeline in pipelines.items():
            (activity,) = pipeline.inputs["activities"]
            assert activity["type"] == "AzureMLExecutePipeline"
            # The endpoint id the PipelineEndpoint resource reported (an output), no version:
            # the endpoint's default version runs, so a new version needs no ADF change.
            assert activity["mlPipelineEndpointId"] == endpoints[name].outputs["endpoint_id"]
            assert "version" not in activity and "mlPipelineId" not in activity
            assert activity["experimentName"] == definitions[name].spec.experiment
            assert activity["linkedServiceName"] == {
                "referenceName": linked.inputs["linkedServiceName"],
                "type": "LinkedServiceReference",
            }
        assert run.exports["dataFactoryPipelines"] == {
            name: p.inputs["pipelineName"] for name, p in pipelines.items()
        }


def _adf_pipelines(run: Run) -> dict[str, Registration]:
    """ADF pipelines by the definition they run (its endpoint's name)."""
    prefix = f"{run.settings.name_prefix}-{run.stack}-"
    return {p.inputs["pipelineName"].removeprefix(prefix): p for p in run.of_type(_PIPELINE)}


_ADF_TYPE = {
    ParameterType.STRING: "String",
    ParameterType.INT: "Int",
    ParameterType.FLOAT: "Float",
    ParameterType.BOOL: "Bool",
}


def test_pipeline_parameters_are_the_definitions_with_types_and_defaults(
    dev_with_factory: Run,
) -> None:
    definitions = _definitions()
    for run in _factory_runs(dev_with_factory):
        for name, pipeline in _adf_pipelines(run).items():
            spec = definitions[name].spec
            assert pipeline.inputs["parameters"] == {
                key: {"type": _ADF_TYPE[p.type], "defaultValue": p.default}
                for key, p in spec.parameters.items()
            }
            (activity,) = pipeline.inputs["activities"]
            assert activity["mlPipelineParameters"] == {
                key: {"type": "Expression", "value": f"@pipeline().parameters.{key}"}
                for key in spec.parameters
            }


def _recurrence(schedule: Any) -> dict[str, Any]:
    """What the trigger's recurrence must be: Azure ML's recurrence of the same schedule."""
    rec = effective_recurrence(schedule)
    expected: dict[str, Any] = {
        "frequency": rec.frequency.value,
        "interval": rec.interval,
        "timeZone": rec.time_zone,
        "startTime": rec.start_time or "2025-01-01T00:00:00",
    }
    if rec.time_zone == "UTC":
        expected["startTime"] += "Z"
    plan = {
        "hours": rec.hours,
        "minutes": rec.minutes,
        "weekDays": [d.value for d in rec.week_days] if rec.week_days else None,
    }
    if any(v is not None for v in plan.values()):
        expected["schedule"] = {k: v for k, v in plan.items() if v is not None}
    return expected


def test_triggers_follow_the_definitions_recurrence_and_parameters(dev_with_factory: Run) -> None:
    definitions = _definitions()
    expected_triggers = {
        (name, t.name): t for name, d in definitions.items() for t in d.spec.data_factory.triggers
    }
    assert expected_triggers, "no sample definition has a Data Factory trigger"
    for run in _factory_runs(dev_with_factory):
        prefix = f"{run.settings.name_prefix}-{run.stack}-"
        pipelines = _adf_pipelines(run)
        triggers = {t.inputs["name"]: t for t in run.of_type(_TRIGGER)}
        assert set(triggers) == {f"{prefix}{p}-{t}" for p, t in expected_triggers}
        factory = run.exports["dataFactoryName"]
        for (pipeline, name), schedule in expected_triggers.items():
            trigger = triggers[f"{prefix}{pipeline}-{name}"].inputs
            assert (trigger["factory_name"], trigger["subscription_id"]) == (
                factory,
                SUBSCRIPTION_ID,
            )
            properties = trigger["properties"]
            assert properties["type"] == "ScheduleTrigger"
            assert properties["typeProperties"]["recurrence"] == _recurrence(schedule)
            (target,) = properties["pipelines"]
            assert target["pipelineReference"] == {
                "referenceName": pipelines[pipeline].inputs["pipelineName"],
                "type": "PipelineReference",
            }
            assert target.get("parameters", {}) == schedule.parameters
            # Started where the stack runs schedules (and the trigger is on), stopped elsewhere.
            assert trigger["started"] is (run.settings.schedules_enabled and schedule.enabled)
            assert triggers[f"{prefix}{pipeline}-{name}"].outputs["runtime_state"] == (
                "Started" if trigger["started"] else "Stopped"
            )


def test_dev_with_a_factory_creates_its_triggers_stopped(dev_with_factory: Run) -> None:
    assert not dev_with_factory.settings.schedules_enabled
    triggers = dev_with_factory.of_type(_TRIGGER)
    assert triggers
    assert all(t.inputs["started"] is False for t in triggers)


def test_prod_starts_its_triggers() -> None:
    run = run_stack(REPO_ROOT / "Pulumi.prod.yaml")
    triggers = run.of_type(_TRIGGER)
    assert triggers
    assert all(t.inputs["started"] is True for t in triggers)


def test_an_existing_factory_is_used_not_created(tmp_path: Path) -> None:
    stack = _write_stack(
        tmp_path,
        "shared",
        "  azureml-pipelines:dataFactory:\n"
        "    existing: adf-shared\n"
        "    resourceGroupName: rg-data\n"
        "    role: Contributor\n"
        "    pipelines: [sales-report]\n",
    )
    run = run_stack(stack)
    assert run.of_type(_FACTORY) == []
    assert "azure-native:datafactory:getFactory" in run.calls
    linked = run.one(_LINKED)
    assert (linked.inputs["factoryName"], linked.inputs["resourceGroupName"]) == (
        "adf-shared",
        "rg-data",
    )
    (pipeline,) = run.of_type(_PIPELINE)
    assert pipeline.inputs["pipelineName"] == "amlpipe-shared-sales-report"
    assert pipeline.inputs["resourceGroupName"] == "rg-data"
    (grant,) = [r for r in run.of_type(_ROLE) if r.name.startswith("adf-")]
    assert grant.inputs["roleDefinitionId"].endswith(FactoryRole.CONTRIBUTOR.role_id)
    assert grant.inputs["scope"] == run.one(_WORKSPACE).id
    assert run.exports["dataFactoryName"] == "adf-shared"
    assert run.exports["dataFactoryPipelines"] == {"sales-report": "amlpipe-shared-sales-report"}


def test_an_existing_factory_without_identity_fails_with_the_reason(tmp_path: Path) -> None:
    stack = _write_stack(
        tmp_path, "noid", "  azureml-pipelines:dataFactory: {existing: adf-no-identity}\n"
    )
    done = run_harness(stack)
    assert done.returncode != 0
    assert "Data Factory 'adf-no-identity' has no system-assigned managed identity" in done.stderr


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "{name: amlpipe-x-adf, pipelines: [churn-train, churm-train]}",
            "azureml-pipelines:dataFactory.pipelines[1]: unknown pipeline 'churm-train' "
            "(known pipelines: churn-train, sales-report); did you mean 'churn-train'?",
        ),
        (
            "adf-by-name-only",
            "azureml-pipelines:dataFactory: expected an object such as {name: adf-...}, "
            "found 'adf-by-name-only'",
        ),
        (
            "{name: amlpipe-x-adf, colour: blue}",
            "azureml-pipelines:dataFactory.colour: unknown field; allowed fields: name, existing, "
            "resourceGroupName, role, pipelines",
        ),
        (
            "{name: amlpipe-x-adf, role: Owner}",
            "azureml-pipelines:dataFactory.role: 'Owner' is not allowed; allowed values: "
            "AzureML Data Scientist, Contributor",
        ),
        (
            "{name: amlpipe-x-adf, existing: adf-shared}",
            "azureml-pipelines:dataFactory.existing: give either name (create) or existing, "
            "not both",
        ),
        (
            "{role: Contributor}",
            "azureml-pipelines:dataFactory: name the factory (name: to create one, existing: "
            "to use one) or leave the key out to turn Data Factory off",
        ),
        (
            "{name: a_b}",
            "azureml-pipelines:dataFactory.name: 'a_b' is not a Data Factory name",
        ),
    ],
    ids=["unknown-pipeline", "string", "unknown-field", "role", "both", "no-name", "bad-name"],
)
def test_bad_factory_setting_stops_the_program_with_the_key_named(
    tmp_path: Path, value: str, message: str
) -> None:
    stack = _write_stack(tmp_path, "broken", f"  azureml-pipelines:dataFactory: {value}\n")
    done = run_harness(stack)
    assert done.returncode != 0
    assert message in done.stderr
