"""The v2 dynamic resources (`PipelineComponentV2`, `DefaultDeploymentV2`) through the real provider
host, fed what the real program registers for `Pulumi.v2.yaml`.

Real: the program (recording mocks, in a copy of the project), the provider host started as the
Pulumi CLI's plugin script starts it (`python -u -m pulumi.dynamic`, gRPC), the provider the program
pickled, and inside the host azure-ai-ml's own MLClient operations with azure-identity's
`DefaultAzureCredential`, reaching the loopback fake ARM service only through the SDKs' own
environment settings (cloud metadata URL, App Service managed-identity endpoint, CA bundle; see
tests/azureml_v2/loopback.py). Stand-in: azure-native's writes of the workspace children
(EnvironmentVersion, BatchEndpoint, Schedule; deployments are the dynamic BatchDeploymentV2), as
PUT/DELETE of the registered inputs on the same fake service (see
tests/azureml_v2/program_engine.py). Step code goes up from the host, by azure-storage-blob, to the
loopback blob service (tests/azureml_v2/fake_blob.py) behind the fake's `startPendingUpload`."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from pulumi.output import Unknown
from pulumi.runtime import rpc

from tests.azureml_v2.fake_arm import FakeArm
from tests.azureml_v2.host_fixtures import loopback, project_copy, start_host
from tests.azureml_v2.loopback import LoopbackArm
from tests.azureml_v2.program_engine import Engine, EngineError, ProgramRun, run_program
from tests.azureml_v2.v2_fixtures import REPO_ROOT
from tests.launch.pulumi_cli import this_interpreter_is_a_venv
from tests.program.pulumi_config import stack_config

pytestmark = pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").is_file() or not this_interpreter_is_a_venv(),
    reason="the provider host is started from the project's .venv (make venv), as the CLI does",
)

COMPONENT = "pulumi-python:dynamic/azureml:PipelineComponentV2"
DEFAULT = "pulumi-python:dynamic/azureml:DefaultDeploymentV2"
ML = "azure-native:machinelearningservices:"
V2_TEXT = (REPO_ROOT / "Pulumi.v2.yaml").read_text(encoding="utf-8")
CHURN_SCRIPT = "pipeline_defs/churn-train/steps/train/train.R"

SECRETS = {
    "AZURE_CLIENT_SECRET": "sUpEr-SeCrEt-ClIeNt-VaLuE~42",
    "ARM_CLIENT_SECRET": "arm-SeCrEt-VaLuE~43",
    "AZURE_FEDERATED_TOKEN": "eyJ-fEdErAtEd-ToKeN-44",
}
"""Credentials a CI environment holds (not enough for azure-identity's environment credential,
so the managed identity of the loopback is the one used)."""


def _config(project: Path) -> dict[str, str]:
    return stack_config(project / "Pulumi.v2.yaml")


def _components(arm: FakeArm) -> set[str]:
    return {p for p in arm.objects if p.startswith("/components/")}


def _named(arm: FakeArm) -> set[str]:
    return {p for p in arm.objects if not p.startswith("/codes/")}


def _default_of(arm: FakeArm, endpoint: str) -> str:
    defaults = arm.objects[f"/batchEndpoints/{endpoint}"]["properties"].get("defaults") or {}
    return str(defaults.get("deploymentName", ""))


def _by_name(run: ProgramRun, typ: str) -> dict[str, Any]:
    return {r.name: r for r in run.of_type(typ)}


def _leaks(text: str, served: LoopbackArm) -> list[str]:
    values = {**SECRETS, "IDENTITY_HEADER": served.identity_header, "token": served.token}
    assert served.arm.blobs is not None
    values |= {f"SAS of {c}": sig for c, sig in served.arm.blobs.signatures.items()}
    return [name for name, value in values.items() if value in text]


def _uploaded_files(served: LoopbackArm) -> int:
    assert served.arm.blobs is not None
    return sum(len(blobs) for blobs in served.arm.blobs.containers.values())


def test_preview_up_noop_one_script_change_refresh_and_destroy_through_the_host(
    tmp_path: Path,
) -> None:
    project = project_copy(tmp_path)
    run = run_program(project, "v2", V2_TEXT)
    with loopback(tmp_path) as served:
        arm = served.arm
        host = start_host(project, served, _config(project), SECRETS)
        engine = Engine(host, served)
        try:
            # preview of the first up: Check with the inputs that depend on resources still to
            # be created unknown (the image digest, so the versions; the endpoint and deployment
            # names), and no write.
            plan = engine.preview(run)
            assert {op for op, _ in plan.values()} == {"create"}
            assert arm.writes() == []
            for component in run.of_type(COMPONENT):
                checked = host.check(component.urn, {}, _unknowns(engine, run, component))
                assert isinstance(checked["version"], Unknown)
                assert checked["pipeline"] == component.inputs["pipeline"]

            # up: every component registered, every endpoint switched to its deployment
            ops = engine.up(run)
            assert {o.op for o in ops} == {"create"}
            assert arm.unexpected == [] and served.refused == []
            for component in run.of_type(COMPONENT):
                state = engine.state[component.urn]
                # The mocks' output model is the real provider's answer (the contract).
                assert state.outputs["component_id"] == component.outputs["component_id"]
                assert state.id == component.id
            for switch in run.of_type(DEFAULT):
                inputs = switch.inputs
                assert _default_of(arm, inputs["endpoint"]) == inputs["deployment"]
                assert engine.state[switch.urn].outputs["kept"] == [inputs["deployment"]]
            # Each step's code folder went up once, from the host, over the blob service.
            step_folders = {
                (c.inputs["code_root"], node)
                for c in run.of_type(COMPONENT)
                for node in c.inputs["steps"]
            }
            assert len(arm.blobs.containers) == len(step_folders)  # type: ignore[union-attr]
            uploaded = _uploaded_files(served)
            components_before = _components(arm)
            assert len(components_before) == sum(
                len(c.inputs["steps"]) + 1 for c in run.of_type(COMPONENT)
            )

            # a second up with nothing changed: the program registers the same inputs and the
            # providers write nothing
            again = run_program(project, "v2", V2_TEXT)
            arm.requests.clear()
            assert {o.op for o in engine.up(again)} == {"same"}
            assert arm.writes() == [] and _uploaded_files(served) == uploaded

            # one script of churn-train changed: the preview says what, the up creates one step
            # version and one pipeline version and switches that endpoint only
            script = project / CHURN_SCRIPT
            script.write_text(script.read_text(encoding="utf-8") + "\n# tuned\n", "utf-8")
            changed = run_program(project, "v2", V2_TEXT)
            old_churn = _by_name(again, COMPONENT)["pipelines-v2-churn-train-component"]
            new_churn = _by_name(changed, COMPONENT)["pipelines-v2-churn-train-component"]
            plan = engine.preview(changed)
            kind, diff = plan[new_churn.urn]
            assert (kind, list(diff.replaces)) == ("replace", ["version"])
            churn_default = _by_name(changed, DEFAULT)["pipelines-v2-churn-train-default"]
            assert plan[churn_default.urn][0] == "update"
            sales = [u for u in plan if "sales-report" in u]
            assert sales and all(plan[u][0] == "same" for u in sales)
            arm.requests.clear()
            ops = [(o.urn, o.op) for o in engine.up(changed)]
            assert arm.unexpected == []
            created = engine.state[new_churn.urn].outputs["created"]
            (train,) = [c for c in created if c.startswith("churn_train__train:")]
            pipeline_version = new_churn.inputs["version"]
            assert sorted(created) == sorted([train, f"churn_train:{pipeline_version}"])
            assert _components(arm) - components_before == {
                f"/components/{train.replace(':', '/versions/')}",
                f"/components/churn_train/versions/{pipeline_version}",
            }
            # The replaced pipeline component version is archived (still runs for a retained
            # deployment), the endpoint's default moved to the new deployment, and nothing of
            # sales-report was touched.
            old_path = f"/components/churn_train/versions/{old_churn.inputs['version']}"
            assert arm.objects[old_path]["properties"]["isArchived"] is True
            assert [op for urn, op in ops if urn == new_churn.urn] == ["replace", "delete-replaced"]
            switch_inputs = churn_default.inputs
            assert _default_of(arm, switch_inputs["endpoint"]) == switch_inputs["deployment"]
            kept = engine.state[churn_default.urn].outputs["kept"]
            assert kept[0] == switch_inputs["deployment"] and len(kept) == 2
            assert not [p for _, p in arm.writes() if "sales" in p]
            # Only the changed folder went up again (one new container with the train folder).
            assert len(arm.blobs.containers) == len(step_folders) + 1  # type: ignore[union-attr]
            train_folder = project / "pipeline_defs/churn-train/steps/train"
            train_files = [p for p in train_folder.rglob("*") if p.is_file()]
            assert _uploaded_files(served) == uploaded + len(train_files)
            assert all(op == "same" for urn, op in ops if "sales-report" in urn)
        finally:
            host.close()

        # refresh in a fresh host process, which unpickles the provider from the state
        host = start_host(project, served, _config(project), SECRETS)
        engine.host = host
        try:
            arm.requests.clear()
            refreshed = engine.refresh()
            assert refreshed and set(refreshed.values()) == {"same"}
            assert arm.writes() == []

            # Out of band: churn-train's default moved by hand, sales-report's pipeline
            # component version deleted. Refresh sees both; the next up repairs both and prunes
            # none of the deployments this stack keeps.
            churn_endpoint = f"/batchEndpoints/{switch_inputs['endpoint']}"
            arm.objects[churn_endpoint]["properties"]["defaults"] = {"deploymentName": "by-hand"}
            sales = _by_name(changed, COMPONENT)["pipelines-v2-sales-report-component"]
            sales_path = f"/components/sales_report/versions/{sales.inputs['version']}"
            del arm.objects[sales_path]
            refreshed = engine.refresh()
            assert refreshed[churn_default.urn] == "changed"
            assert refreshed[sales.urn] == "gone" and sales.urn not in engine.state
            assert {v for u, v in refreshed.items() if u not in (churn_default.urn, sales.urn)} == {
                "same"
            }
            deployments = {p for p in arm.objects if "/deployments/" in p}
            repaired = {o.urn: o.op for o in engine.up(changed)}
            assert repaired[churn_default.urn] == "update" and repaired[sales.urn] == "create"
            assert _default_of(arm, switch_inputs["endpoint"]) == switch_inputs["deployment"]
            assert engine.state[churn_default.urn].outputs["kept"] == kept
            assert {p for p in arm.objects if "/deployments/" in p} == deployments
            assert sales_path in arm.objects
            assert set(engine.refresh().values()) == {"same"}

            # nothing leaked: pickled providers, state inputs and outputs, what the service got
            for res in engine.state.values():
                text = json.dumps([res.inputs, res.outputs], default=str)
                assert not _leaks(text, served)
                provider = res.inputs.get("__provider")
                if provider:
                    assert not _leaks(base64.b64decode(provider).decode("latin-1"), served)
            assert not _leaks(json.dumps(arm.objects), served)

            # A preview of an image change: the new digest is unknown until the image is pushed,
            # so every component's version is unknown: Diff with unknowns says replace, the
            # switches an update (their new deployments do not exist yet), and nothing is written.
            requirements = project / "docker" / "requirements.txt"
            requirements.write_text(requirements.read_text("utf-8") + "\n# rebuilt\n", "utf-8")
            rebuilt = run_program(project, "v2", V2_TEXT)
            arm.requests.clear()
            plan = engine.preview(rebuilt)
            assert arm.writes() == []
            for component in rebuilt.of_type(COMPONENT):
                kind, diff = plan[component.urn]
                assert kind == "replace" and "version" in diff.replaces
            for switch in rebuilt.of_type(DEFAULT):
                assert plan[switch.urn][0] == "update"

            # destroy: component versions archived, schedules and endpoints deleted
            engine.destroy()
            assert engine.state == {}
            assert not [
                p
                for p in arm.objects
                if p.startswith(("/schedules/", "/batchEndpoints/")) and "/deployments/" not in p
            ]
            pipeline_versions = [
                p for p in _components(arm) if p.startswith("/components/churn_train/")
            ]
            assert all(arm.objects[p]["properties"]["isArchived"] for p in pipeline_versions)
            assert arm.unexpected == [] and served.refused == []
        finally:
            host.close()


def _unknowns(engine: Engine, run: ProgramRun, reg: Any) -> dict[str, Any]:
    """The inputs of `reg` as a first preview sends them (what depends on new resources is
    unknown)."""
    new = {r.urn for r in run.custom()}
    return {
        k: (rpc.UNKNOWN if set(reg.property_dependencies.get(k, [])) & new else v)
        for k, v in reg.inputs.items()
    }


@pytest.mark.parametrize("timing", ["before", "after"])
def test_a_write_failing_half_way_is_repaired_by_the_next_up(tmp_path: Path, timing: Any) -> None:
    project = project_copy(tmp_path)
    run = run_program(project, "v2", V2_TEXT)
    clean = FakeArm()
    with loopback(tmp_path / "clean", clean) as served:
        host = start_host(project, served, _config(project))
        try:
            Engine(host, served).up(run)
        finally:
            host.close()
    with loopback(tmp_path) as served:
        arm = served.arm
        host = start_host(project, served, _config(project))
        engine = Engine(host, served)
        try:
            # The second pipeline component registration fails (before or after it applied).
            second = sorted(r.inputs["component"] for r in run.of_type(COMPONENT))[1]
            served.fail("PUT", f"/components/{second}/versions/", timing)
            with pytest.raises(EngineError):
                engine.up(run)
            assert served.faults == []
            assert len(engine.state) < len(run.custom())
            engine.up(run)
            # The same objects as a deploy without the fault (code versions are the fake's
            # listing of already uploaded folders, named per lookup: left out).
            assert _named(arm) == _named(clean)
            for path, body in clean.objects.items():
                if path.startswith("/batchEndpoints/") or path.startswith("/schedules/"):
                    assert arm.objects[path]["properties"] == body["properties"], path
            assert arm.unexpected == [] and served.refused == []
            arm.requests.clear()
            assert {o.op for o in engine.up(run)} == {"same"}
            assert arm.writes() == []
        finally:
            host.close()


def test_an_endpoint_update_keeps_its_default_deployment(tmp_path: Path) -> None:
    # azure-native PUTs a batch endpoint whole, and its `defaults` are the switch's to set
    # (ignore_changes): a change of the endpoint alone (here the stack's tags) would leave it
    # without a default, refusing every invocation, unless the switch re-asserts it in the same up.
    project = project_copy(tmp_path)
    run = run_program(project, "v2", V2_TEXT)
    with loopback(tmp_path) as served:
        arm = served.arm
        host = start_host(project, served, _config(project), SECRETS)
        engine = Engine(host, served)
        try:
            engine.up(run)
            tagged_text = V2_TEXT + "  azureml-pipelines:tags:\n    team: forecasting\n"
            tagged = run_program(project, "v2", tagged_text)
            ops = {o.urn: o.op for o in engine.up(tagged)}
            endpoints = tagged.of_type(ML + "BatchEndpoint")
            assert endpoints and all(ops.get(e.urn) == "update" for e in endpoints)
            for switch in tagged.of_type(DEFAULT):
                inputs = switch.inputs
                assert ops.get(switch.urn) == "update"  # re-asserted after the endpoint's PUT
                assert _default_of(arm, inputs["endpoint"]) == inputs["deployment"]
                # The same deployment stays the only one kept: nothing pruned, nothing new.
                assert engine.state[switch.urn].outputs["kept"] == [inputs["deployment"]]
            assert arm.unexpected == [] and served.refused == []
            # And the next up with the same tags writes nothing.
            again = run_program(project, "v2", tagged_text)
            assert {o.op for o in engine.up(again)} == {"same"}
        finally:
            host.close()
