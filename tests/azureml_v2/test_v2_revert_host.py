"""Rollback by revert through the real program and the real provider host (the machinery of
tests/azureml_v2/test_v2_provider_host.py): a script changed and changed back converges with
nothing created, the kept deployment adopted, the archived pipeline component restored and the
endpoint's default switched back; nothing pruned that the revert needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.azureml_v2.host_fixtures import loopback, project_copy, start_host
from tests.azureml_v2.program_engine import Engine, run_program
from tests.azureml_v2.v2_fixtures import REPO_ROOT
from tests.launch.pulumi_cli import this_interpreter_is_a_venv
from tests.program.pulumi_config import stack_config

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").is_file() or not this_interpreter_is_a_venv(),
    reason="the provider host is started from the project's .venv (make venv), as the CLI does",
)

COMPONENT = "pulumi-python:dynamic/azureml:PipelineComponentV2"
DEPLOYMENT = "pulumi-python:dynamic/azureml:BatchDeploymentV2"
DEFAULT = "pulumi-python:dynamic/azureml:DefaultDeploymentV2"
V2_TEXT = (REPO_ROOT / "Pulumi.v2.yaml").read_text(encoding="utf-8")
CHURN_SCRIPT = "pipeline_defs/churn-train/steps/train/train.R"
CHURN = "pipelines-v2-churn-train"


def test_reverting_a_script_change_adopts_what_azure_kept_and_switches_back(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path)
    script = project / CHURN_SCRIPT
    original = script.read_text(encoding="utf-8")
    first = run_program(project, "v2", V2_TEXT)
    with loopback(tmp_path) as served:
        arm = served.arm
        host = start_host(project, served, stack_config(project / "Pulumi.v2.yaml"))
        engine = Engine(host, served)
        try:
            engine.up(first)
            (switch,) = [s for s in first.of_type(DEFAULT) if s.name == f"{CHURN}-default"]
            deployment_a = switch.inputs["deployment"]
            (component,) = [c for c in first.of_type(COMPONENT) if c.name == f"{CHURN}-component"]
            pipeline_a = f"/components/churn_train/versions/{component.inputs['version']}"

            script.write_text(original + "\n# tuned\n", "utf-8")
            tuned = run_program(project, "v2", V2_TEXT)
            engine.up(tuned)
            (component_b,) = [c for c in tuned.of_type(COMPONENT) if c.name == component.name]
            pipeline_b = f"/components/churn_train/versions/{component_b.inputs['version']}"
            assert arm.objects[pipeline_a]["properties"]["isArchived"] is True
            endpoint = f"/batchEndpoints/{switch.inputs['endpoint']}"
            assert f"{endpoint}/deployments/{deployment_a}" in arm.objects  # kept for rollback

            script.write_text(original, "utf-8")
            reverted = run_program(project, "v2", V2_TEXT)
            arm.requests.clear()
            ops = {o.urn: o.op for o in engine.up(reverted)}
            assert arm.unexpected == [] and served.refused == []
            (again,) = [d for d in reverted.of_type(DEPLOYMENT) if d.name.startswith(CHURN)]
            assert again.inputs["deployment"] == deployment_a and ops[again.urn] == "create"
            assert engine.state[again.urn].outputs["adopted"] is True
            # Nothing new on Azure: no component version, no deployment created.
            puts = [p for m, p in arm.writes() if m == "PUT"]
            assert not [p for p in puts if "/deployments/" in p or p.startswith("/codes/")]
            # The only component writes: A restored, then the replaced B archived.
            assert [p for p in puts if p.startswith("/components/")] == [pipeline_a, pipeline_b]
            assert arm.objects[pipeline_a]["properties"]["isArchived"] is False
            assert arm.objects[pipeline_b]["properties"]["isArchived"] is True
            defaults = arm.objects[endpoint]["properties"]["defaults"]
            assert defaults["deploymentName"] == deployment_a
            kept = engine.state[switch.urn].outputs["kept"]
            assert kept[0] == deployment_a and len(kept) == 2
            assert all(f"{endpoint}/deployments/{d}" in arm.objects for d in kept)
            assert all(op == "same" for urn, op in ops.items() if "sales-report" in urn)
        finally:
            host.close()
