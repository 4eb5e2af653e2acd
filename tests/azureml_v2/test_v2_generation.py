"""The v2 wing's generation: definitions -> azure-ai-ml entities -> REST bodies, each validated by
azure-ai-ml and loaded back by azure-ai-ml from its JSON; content-hash versions; shell semantics of
the generated commands; what v2 cannot express, located."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

# Azure ML's own endpoint name rule.
from azure.ai.ml.constants._endpoint import EndpointConfigurations

from infra.definitions.loader import LoadedPipeline
from infra.definitions.timezones import AZUREML_TIME_ZONES
from infra.provider.azureml_v2 import entities as E
from infra.provider.azureml_v2.plan import (
    ENDPOINT_NAME_MAX,
    NotExpressible,
    component_name,
    deployment_name,
    endpoint_name,
    plan_pipeline,
    v2_problems,
)
from tests.azureml_v2.v2_fixtures import IMAGE_REF, IMAGES


def _rest_models() -> Any:
    return __import__(
        "azure.ai.ml._restclient.arm_ml_service.models", fromlist=["ComponentVersion"]
    )


def _json_round_trip(body: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(json.dumps(body))
    return result


def _refs(plan: Any) -> dict[str, str]:
    return {s.node: E.component_ref(s.component, s.version) for s in plan.steps}


# -- both samples, through azure-ai-ml -----------------------------------------------------------


def test_every_sample_becomes_a_pipeline_component_that_azure_ai_ml_validates(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    assert v2_problems(samples) == []
    for loaded in samples:
        plan = plan_pipeline(loaded, IMAGES)
        component = E.pipeline_component(plan)
        assert E.validation_errors(component) == []
        assert set(component.jobs) == {s.name for s in loaded.spec.steps}
        for step in plan.steps:
            child = E.command_component(step, IMAGE_REF)
            assert E.validation_errors(child) == []
            assert child.environment.image == IMAGE_REF
            assert child.environment.conda_file is None


def test_the_stored_pipeline_body_is_read_back_by_azure_ai_ml_from_json(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    from azure.ai.ml.entities._component.component import Component

    for loaded in samples:
        plan = plan_pipeline(loaded, IMAGES)
        body = E.rest_body(E.pipeline_component(plan, component_refs=_refs(plan)))
        back = Component._from_rest_object(_rest_models().ComponentVersion(_json_round_trip(body)))
        assert back.name == plan.component and back.version == plan.version
        assert set(back.jobs) == {s.node for s in plan.steps}
        for step in plan.steps:
            node = back.jobs[step.node]
            assert node._component == E.component_ref(step.component, step.version)
            assert {k: v._data for k, v in node.inputs.items()} == dict(step.bindings)
            assert node.compute == step.compute
        inputs = {name: p.default for name, p in back.inputs.items()}
        assert inputs == {name: p.default for name, p in loaded.spec.parameters.items()}


def test_step_components_round_trip_through_azure_ai_ml_yaml(
    samples: tuple[LoadedPipeline, ...], tmp_path: Path
) -> None:
    from azure.ai.ml import load_component

    loaded = samples[0]
    plan = plan_pipeline(loaded, IMAGES)
    for step in plan.steps:
        child = E.command_component(step, IMAGE_REF)
        source = tmp_path / f"{step.node}.yaml"
        source.write_text(yaml.safe_dump(child._to_dict()))
        back = load_component(source=source)
        assert back.command == step.command
        assert back.name == step.component and back.version == step.version
        assert Path(back.code).resolve() == step.code
        assert set(back.inputs) == {p.name for p in step.inputs}
        assert set(back.outputs) == set(step.outputs)
        assert back.is_deterministic == step.deterministic
        assert back.environment.image == IMAGE_REF


def test_steps_keep_their_kind_code_compute_and_typed_parameters(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    churn = next(p for p in samples if p.spec.name == "churn-train")
    plan = plan_pipeline(churn, IMAGES)
    steps = {s.node: s for s in plan.steps}
    assert steps["prep"].command.startswith("python prep.py ")
    assert steps["train"].command.startswith("Rscript train.R ")
    assert steps["train"].bindings["prep_data"] == "${{parent.jobs.prep.outputs.data}}"
    assert steps["train"].bindings["n_trees"] == "${{parent.inputs.n_trees}}"
    assert steps["evaluate"].deterministic is False
    assert {s.compute for s in plan.steps} == {"cpu-cluster"}
    ports = {p.name: p for p in plan.inputs}
    assert (ports["rows"].type, ports["rows"].default) == ("integer", 2000)
    assert (ports["test_fraction"].type, ports["test_fraction"].default) == ("number", 0.25)
    assert plan.component == "churn_train"
    assert steps["train"].component == "churn_train__train"


# -- the command line as the shell on the cluster sees it ----------------------------------------


def _substitute(command: str, values: dict[str, str]) -> str:
    # What Azure ML does before the shell runs the command: textual replacement of placeholders.
    return re.sub(r"\$\{\{(inputs|outputs)\.(\w+)\}\}", lambda m: values[m.group(2)], command)


def test_each_value_reaches_the_script_as_exactly_one_argument(
    write_pipeline: Callable[..., LoadedPipeline], tmp_path: Path
) -> None:
    loaded = write_pipeline(
        """\
        name: quoting
        experiment: quoting
        compute: cpu-cluster
        parameters:
          label: {type: string, default: "two words; $HOME `x` \\"q\\" * ?"}
          flag: {type: bool, default: true}
        steps:
          - name: show
            kind: command
            code: steps/show
            command: [python3, "my script.py", "a b"]
            args: ["--label", "${{parameters.label}}", "--flag", "${{parameters.flag}}",
                   "lit eral;", "${{outputs.out}}"]
            outputs: [out]
        """,
        {"steps/show/my script.py": "import json, sys\nprint(json.dumps(sys.argv[1:]))\n"},
    )
    plan = plan_pipeline(loaded, IMAGES)
    (step,) = plan.steps
    flag = next(p for p in step.inputs if p.name == "flag")
    assert (flag.type, flag.default, flag.enum) == ("string", "True", ("True", "False"))
    label = loaded.spec.parameters["label"].default
    out_dir = str(tmp_path / "out dir")
    command = _substitute(step.command, {"label": str(label), "flag": "True", "out": out_dir})
    done = subprocess.run(
        ["bash", "-c", command.replace("python3", sys.executable, 1)],
        cwd=step.code,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    expected = ["a b", "--label", label, "--flag", "True", "lit eral;", out_dir]
    assert json.loads(done.stdout) == expected


# -- versions -------------------------------------------------------------------------------------

TWO_STEPS = """\
    name: demo
    experiment: demo
    compute: cpu-cluster
    parameters:
      rows: {type: int, default: 10}
    steps:
      - name: prep
        kind: python
        code: steps/prep
        script: prep.py
        args: [--rows, "${{parameters.rows}}", --out, "${{outputs.data}}"]
        outputs: [data]
      - name: train
        kind: r
        code: steps/train
        script: train.R
        args: [--data, "${{steps.prep.outputs.data}}"]
    schedules:
      - name: nightly
        cron: "30 2 * * *"
    """
FILES = {"steps/prep/prep.py": "print(1)\n", "steps/train/train.R": "cat(1)\n"}


def test_versions_are_content_hashes_one_script_changes_one_step_and_the_pipeline(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    first = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    again = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    assert first == again
    changed = plan_pipeline(
        write_pipeline(TWO_STEPS, {**FILES, "steps/train/train.R": "cat(2)\n"}), IMAGES
    )
    before = {s.node: s.version for s in first.steps}
    after = {s.node: s.version for s in changed.steps}
    assert after["prep"] == before["prep"]
    assert after["train"] != before["train"]
    assert changed.version != first.version
    # The schedule is not part of the published version (managed without publishing).
    rescheduled = plan_pipeline(
        write_pipeline(TWO_STEPS.replace("30 2 * * *", "0 3 * * *"), FILES), IMAGES
    )
    assert rescheduled.version == first.version
    # A new image digest is a new version of every step.
    other_image = plan_pipeline(
        write_pipeline(TWO_STEPS, FILES), {"training": IMAGE_REF.replace("ab", "cd")}
    )
    assert all(a.version != b.version for a, b in zip(first.steps, other_image.steps, strict=True))


def test_names_follow_azure_ml_v2_rules() -> None:
    salt = "amlpipe-dev-00000000-0000-0000-0000-000000000000"
    for pipeline in ["churn-train", "x", "9lives", "a_b", "L" * 64, "a--b__c"]:
        name = endpoint_name(pipeline, salt)
        assert 3 <= len(name) <= ENDPOINT_NAME_MAX
        assert re.match(EndpointConfigurations.NAME_REGEX_PATTERN, name), name
        assert name == endpoint_name(pipeline, salt)
        assert name != endpoint_name(pipeline, salt + "-prod")
        assert re.match(r"^[a-z][a-z\d_]*$", component_name(pipeline)), pipeline
    assert re.match(EndpointConfigurations.NAME_REGEX_PATTERN, deployment_name("0" * 32))


# -- schedules, deployments, endpoints ------------------------------------------------------------


def test_schedules_become_job_schedules_azure_ai_ml_reads_back(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    from azure.ai.ml.entities._schedule.schedule import JobSchedule

    churn = next(p for p in samples if p.spec.name == "churn-train")
    plan = plan_pipeline(churn, IMAGES)
    ref = E.component_ref(plan.component, plan.version)
    start = "2026-12-01T00:00:00"
    by_name = {}
    for schedule in churn.spec.schedules:
        entity = E.job_schedule(churn.spec, schedule, f"churn-{schedule.name}", ref, False, start)
        body = _json_round_trip(E.rest_body(entity))
        back = JobSchedule._from_rest_object(_rest_models().Schedule(body))
        by_name[schedule.name] = (body, back)
        assert back.is_enabled is False
        assert back.create_job.component == ref
    nightly, _ = by_name["nightly"]
    assert nightly["properties"]["trigger"]["triggerType"] == "Cron"
    assert nightly["properties"]["trigger"]["expression"] == "30 2 * * *"
    assert nightly["properties"]["trigger"]["startTime"] == start
    weekly, back = by_name["weekly-large"]
    trigger = weekly["properties"]["trigger"]
    assert (trigger["frequency"], trigger["schedule"]["weekDays"]) == ("week", ["sunday"])
    assert (trigger["schedule"]["hours"], trigger["schedule"]["minutes"]) == ([6], [0])
    job = weekly["properties"]["action"]["jobDefinition"]
    assert job["inputs"]["rows"]["value"] == "5000"
    assert job["experimentName"] == "churn-train"


def test_every_time_zone_the_definitions_accept_is_an_azure_ai_ml_time_zone() -> None:
    from azure.ai.ml.constants import TimeZone

    assert set(AZUREML_TIME_ZONES) <= {zone.value for zone in TimeZone}


def test_a_published_version_is_a_pipeline_component_batch_deployment(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    from azure.ai.ml.entities import BatchEndpoint, PipelineComponentBatchDeployment

    plan = plan_pipeline(samples[0], IMAGES)
    endpoint = endpoint_name(plan.name, "salt")
    ref = E.component_ref(plan.component, plan.version)
    deployment = E.batch_deployment(plan, endpoint, deployment_name(plan.version), ref)
    body = _json_round_trip(E.rest_body(deployment, location="westeurope"))
    assert body["properties"]["deploymentConfiguration"]["componentId"]["assetId"] == ref
    arm = (
        "/subscriptions/0/resourceGroups/rg/providers/Microsoft.MachineLearningServices/"
        f"workspaces/ws/batchEndpoints/{endpoint}"
    )
    back = PipelineComponentBatchDeployment._from_rest_object(
        _rest_models().BatchDeployment(
            {**body, "name": deployment.name, "id": f"{arm}/deployments/{deployment.name}"}
        )
    )
    assert back.component == ref
    end = E.batch_endpoint(endpoint, plan.description, deployment.name)
    end_body = _json_round_trip(E.batch_endpoint_body(end, "westeurope"))
    assert end_body["properties"]["defaults"]["deploymentName"] == deployment.name
    assert end_body["properties"]["authMode"].lower() == "aadtoken"  # Entra ID tokens only
    back_end = BatchEndpoint._from_rest_object(
        _rest_models().BatchEndpoint({**end_body, "name": endpoint, "id": arm})
    )
    assert back_end.defaults.deployment_name == deployment.name


# -- what v2 cannot express -----------------------------------------------------------------------

UNEXPRESSIBLE = """\
    name: demo
    experiment: demo
    compute: cpu-cluster
    parameters:
      quote: {type: string, default: "it's"}
      Rows: {type: int, default: 1}
      rows: {type: int, default: 2}
    steps:
      - name: prep
        kind: python
        code: steps/prep
        script: prep.py
        args: [--x, "$[[inputs.maybe]]"]
      - name: Train
        kind: r
        code: steps/train
        script: train.R
        after: [prep]
    schedules:
      - name: nightly
        cron: "30 2 * * *"
        parameters: {quote: "a'b"}
    """


def test_what_v2_cannot_express_is_reported_located_before_anything_is_built(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    loaded = write_pipeline(UNEXPRESSIBLE, FILES)
    errors = v2_problems([loaded])
    found = {(e.path, e.line) for e in errors}
    assert (("parameters", "rows"), 7) in found  # Rows / rows
    assert (("parameters", "quote", "default"), 5) in found
    assert (("steps", 0, "args", 1), 13) in found  # $[[ ... ]]
    assert (("steps", 1, "name"), 14) in found  # Train: node names are lowercase
    assert (("steps", 1, "after", 0), 18) in found  # prep has no output to wait for
    assert (("schedules", 0, "parameters", "quote"), 22) in found
    assert len(errors) == 6, [str(e) for e in errors]
    assert all(str(e).startswith(str(Path(e.file))) and "Azure ML v2" in str(e) for e in errors)
    with pytest.raises(NotExpressible):
        plan_pipeline(loaded, IMAGES)


def test_two_definitions_that_map_to_one_component_name_are_reported(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    one = write_pipeline(TWO_STEPS, FILES, "one")
    two = write_pipeline(TWO_STEPS.replace("name: demo", "name: Demo", 1), FILES, "two")
    (error,) = v2_problems([one, two])
    assert error.path == ("name",) and error.line == 1
    assert "'demo'" in error.message and "'Demo'" in error.message


def test_after_binds_an_output_of_the_awaited_step_as_an_ordering_input(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    loaded = write_pipeline(
        TWO_STEPS.replace('args: [--data, "${{steps.prep.outputs.data}}"]', "after: [prep]"),
        FILES,
    )
    assert v2_problems([loaded]) == []
    plan = plan_pipeline(loaded, IMAGES)
    train = plan.steps[1]
    assert train.bindings == {"after_prep": "${{parent.jobs.prep.outputs.data}}"}
    assert "after_prep" not in train.command
    assert E.validation_errors(E.pipeline_component(plan)) == []


def test_the_plan_module_does_not_import_azure_ai_ml() -> None:
    code = (
        "import sys, infra.provider.azureml_v2.plan, infra.provider.azureml_v2.entities\n"
        "assert not [m for m in sys.modules if m.startswith('azure.ai.ml')]\nprint('ok')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr


def test_a_recurrence_that_would_fire_at_creation_needs_a_start_time(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    hourly = TWO_STEPS.replace('cron: "30 2 * * *"', "recurrence: {frequency: Hour, interval: 2}")
    (error,) = v2_problems([write_pipeline(hourly, FILES)])
    assert (error.path, error.line) == (("schedules", 0, "recurrence"), 20)
    assert "start_time" in error.message
    started = hourly.replace("interval: 2}", "interval: 2, start_time: '2026-01-05T06:00:00'}")
    assert v2_problems([write_pipeline(started, FILES)]) == []


def test_the_invoke_body_for_rest_callers_is_azure_ai_mls_own(
    samples: tuple[LoadedPipeline, ...],
) -> None:
    sales = next(p for p in samples if p.spec.name == "sales-report")
    body = E.invoke_body(sales.spec, {"transactions": 20000, "currency": "USD"})
    assert body == {
        "properties": {
            "inputData": {
                "transactions": {"jobInputType": "Literal", "value": 20000},
                "currency": {"jobInputType": "Literal", "value": "USD"},
            }
        }
    }
