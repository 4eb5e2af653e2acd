"""The Azure ML v1 adapter: the real azureml step, environment, recurrence and auth objects it
builds (no workspace needed), its retry policy, and opt-in live tests against a real workspace."""

from __future__ import annotations

import os
from typing import Any

import pytest
from provider_fixtures import IMAGE_V1, WORKSPACE, Project

from infra.definitions.model import Frequency, Recurrence, WeekDay
from infra.definitions.recurrence import effective_recurrence
from infra.provider import azureml_backend as az
from infra.provider.port import BackendError, Status


@pytest.fixture
def compiled(project: Project) -> az.CompiledPipeline:
    loaded = project.load()
    return az.compile_steps(loaded.spec, loaded.folder, {"training": IMAGE_V1})


def _step(compiled: az.CompiledPipeline, name: str) -> Any:
    return next(s for s in compiled.steps if s.name == name)


def test_python_step_is_a_python_script_step_with_parameter_and_output(
    project: Project, compiled: az.CompiledPipeline
) -> None:
    from azureml.data import OutputFileDatasetConfig
    from azureml.pipeline.core import PipelineParameter
    from azureml.pipeline.steps import PythonScriptStep

    prep = _step(compiled, "prep")
    assert isinstance(prep, PythonScriptStep)
    assert prep._script_name == "prep.py"
    assert prep._source_directory == str(project.root / "pipeline_defs/demo/steps/prep")
    assert prep._compute_target == "cpu-cluster" and prep._runconfig.target == "cpu-cluster"
    args = prep._arguments
    assert args[:4:2] == ["--epochs", "--n"] and args[3] == "3"
    epochs = args[1]
    assert isinstance(epochs, PipelineParameter)
    assert (epochs.name, epochs.default_value) == ("epochs", 3)
    assert type(epochs.default_value) is int
    assert args[4:] == ["--out", "DatasetOutputConfig:prep_data"]
    assert [type(o) for o in prep._outputs] == [OutputFileDatasetConfig]
    assert prep._outputs[0].name == "prep_data"


def test_r_step_runs_rscript_in_a_command_step_reading_the_upstream_output(
    compiled: az.CompiledPipeline,
) -> None:
    from azureml.data.dataset_consumption_config import DatasetConsumptionConfig
    from azureml.pipeline.steps import CommandStep

    train = _step(compiled, "train")
    assert isinstance(train, CommandStep)
    assert train._command == "Rscript"
    assert train._arguments == [
        "train.R",
        "--data",
        "DatasetConsumptionConfig:prep_data",
        "--model",
        "DatasetOutputConfig:train_model",
    ]
    (data_in,) = train._inputs
    assert isinstance(data_in, DatasetConsumptionConfig) and data_in.mode == "mount"
    # the input is the very output object the upstream step writes: that is the data edge
    assert data_in.dataset is _step(compiled, "prep")._outputs[0]


def test_command_step_keeps_its_argv_and_float_parameter(compiled: az.CompiledPipeline) -> None:
    report = _step(compiled, "report")
    assert report._command == "bash"
    assert report._arguments[:2] == ["report.sh", "DatasetConsumptionConfig:train_model"]
    rate = report._arguments[3]
    assert (rate.name, rate.default_value) == ("rate", 0.5)


def test_environment_runs_the_registry_image_as_is_without_password(
    compiled: az.CompiledPipeline,
) -> None:
    env = compiled.environments["training"]
    assert env.docker.base_image == IMAGE_V1
    assert env.python.user_managed_dependencies is True
    registry = env.docker.base_image_registry
    assert registry.address == "acrtest.azurecr.io"
    assert registry.username is None and registry.password is None
    assert all(s._runconfig.environment is env for s in compiled.steps)


def test_step_environment_variables_and_after_ordering(project: Project) -> None:
    text = (project.root / "pipeline_defs/demo/pipeline.yaml").read_text()
    text = text.replace(
        "    command: [bash, report.sh]\n",
        "    command: [bash, report.sh]\n    after: [prep]\n    environment: {MODE: fast}\n",
    )
    (project.root / "pipeline_defs/demo/pipeline.yaml").write_text(text)
    loaded = project.load()
    compiled = az.compile_steps(loaded.spec, loaded.folder, {"training": IMAGE_V1})
    report = _step(compiled, "report")
    assert report._runconfig.environment_variables == {"MODE": "fast"}
    assert _step(compiled, "prep") in report.run_after_steps


def test_missing_image_reference_is_a_located_error(project: Project) -> None:
    loaded = project.load()
    with pytest.raises(BackendError, match="no image reference for 'training'"):
        az.compile_steps(loaded.spec, loaded.folder, {})


def test_cron_schedule_becomes_a_valid_schedule_recurrence(project: Project) -> None:
    from azureml.pipeline.core.schedule import ScheduleRecurrence, TimeZone

    rec = az.make_recurrence(effective_recurrence(project.load().spec.schedules[0]))
    assert isinstance(rec, ScheduleRecurrence)
    assert (rec.frequency, rec.interval, rec.hours, rec.minutes) == ("Day", 1, [2], [30])
    assert rec.time_zone is TimeZone.UTC and rec.week_days is None
    back = az.recurrence_from_azure(rec)
    assert back == effective_recurrence(project.load().spec.schedules[0])


def test_weekly_recurrence_round_trips_and_bad_time_zone_is_rejected() -> None:
    weekly = Recurrence(
        frequency=Frequency.WEEK,
        interval=2,
        hours=[6, 18],
        minutes=[0],
        week_days=[WeekDay.MONDAY, WeekDay.FRIDAY],
        time_zone="W. Europe Standard Time",
        start_time="2026-01-05T06:00:00",
    )
    rec = az.make_recurrence(weekly)
    assert rec.week_days == ["Monday", "Friday"] and rec.start_time == "2026-01-05T06:00:00"
    assert az.recurrence_from_azure(rec) == weekly
    with pytest.raises(BackendError, match="Windows names"):
        az.make_recurrence(weekly.model_copy(update={"time_zone": "Europe/Berlin"}))


def test_auth_is_chosen_from_the_environment_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE_", "ARM_", "MSI_", "IDENTITY_")):
            monkeypatch.delenv(name)
    assert az.choose_auth().kind == "azure_cli"
    monkeypatch.setenv("IDENTITY_ENDPOINT", "http://169.254.169.254/x")
    assert az.choose_auth().kind == "managed_identity"
    monkeypatch.setenv("AZURE_TENANT_ID", "t")
    monkeypatch.setenv("AZURE_CLIENT_ID", "c")
    monkeypatch.setenv("AZURE_FEDERATED_TOKEN_FILE", "/var/run/token")
    assert az.choose_auth() == az.AuthChoice("workload_identity", "t", "c")
    monkeypatch.setenv("ARM_CLIENT_SECRET", "s3cret")
    choice = az.choose_auth()
    assert choice == az.AuthChoice("service_principal", "t", "c")
    assert "s3cret" not in repr(choice)  # the secret stays in the environment


def test_service_principal_auth_object_is_built_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from azureml.core.authentication import ServicePrincipalAuthentication

    monkeypatch.setenv("AZURE_TENANT_ID", "tenant-x")
    monkeypatch.setenv("AZURE_CLIENT_ID", "client-y")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "secret-z")
    auth = az.auth_from_environment()
    assert isinstance(auth, ServicePrincipalAuthentication)
    assert auth._service_principal_id == "client-y" and auth._tenant_id == "tenant-x"


def test_transient_errors_are_retried_with_growing_delays_and_bounded() -> None:
    delays: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("HTTP 429 Too Many Requests")
        return "ok"

    assert az.with_retries("op", flaky, sleep=delays.append) == "ok"
    assert len(delays) == 2 and delays[1] > delays[0]

    def always_throttled() -> str:
        raise RuntimeError("503 Service Unavailable")

    with pytest.raises(BackendError, match="attempt 5/5"):
        az.with_retries("op", always_throttled, sleep=delays.append)

    def bad_request() -> str:
        raise ValueError("PipelineEndpoint already exists with the given name")

    before = len(delays)
    with pytest.raises(BackendError, match="attempt 1/5"):
        az.with_retries("op", bad_request, sleep=delays.append)
    assert len(delays) == before


def test_errors_are_classified_by_http_status_when_the_sdk_gives_one() -> None:
    from msrest.exceptions import HttpOperationError

    class Response:
        def __init__(self, status_code: int) -> None:
            self.status_code = status_code
            self.reason = "reason"

        def json(self) -> dict[str, str]:
            return {}

        @property
        def text(self) -> str:
            return ""

    def error(code: int) -> HttpOperationError:
        exc = HttpOperationError.__new__(HttpOperationError)
        exc.response = Response(code)
        return exc

    assert az.is_transient(error(429)) and az.is_transient(error(503))
    assert not az.is_transient(error(400)) and not az.is_transient(error(404))
    assert az.is_not_found(error(404)) and not az.is_not_found(error(500))
    assert az.is_not_found(RuntimeError("PipelineEndpoint not found"))


LIVE_VARS = (
    "AZUREML_LIVE_SUBSCRIPTION_ID",
    "AZUREML_LIVE_RESOURCE_GROUP",
    "AZUREML_LIVE_WORKSPACE",
)
_missing = [v for v in LIVE_VARS if not os.environ.get(v)]


@pytest.mark.live
@pytest.mark.skipif(bool(_missing), reason=f"live Azure ML test: set {', '.join(LIVE_VARS)}")
def test_live_workspace_endpoint_lookup_of_an_unknown_name_is_none() -> None:
    backend = az.AzureMLBackend(
        type(WORKSPACE)(
            os.environ["AZUREML_LIVE_SUBSCRIPTION_ID"],
            os.environ["AZUREML_LIVE_RESOURCE_GROUP"],
            os.environ["AZUREML_LIVE_WORKSPACE"],
        )
    )
    assert backend.get_endpoint(name="amlpipe-live-test-no-such-endpoint") is None


LIVE_IMAGE = os.environ.get(
    "AZUREML_LIVE_IMAGE", "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest"
)
LIVE_COMPUTE = os.environ.get("AZUREML_LIVE_COMPUTE", "cpu-cluster")


@pytest.mark.live
@pytest.mark.skipif(bool(_missing), reason=f"live Azure ML test: set {', '.join(LIVE_VARS)}")
def test_live_lifecycle_through_the_provider_host(project: Project) -> None:
    """Publish, no-op, update, pause a schedule, destroy: on a real workspace (opt-in)."""
    import uuid

    from grpc_host import ENDPOINT_TYPE, SCHEDULE_TYPE, ProviderHost, Stack

    name = f"amlpipe-live-{uuid.uuid4().hex[:8]}"
    text = (project.root / "pipeline_defs/demo/pipeline.yaml").read_text()
    text = text.replace("cpu-cluster", LIVE_COMPUTE)
    project.write_pipeline(name, text)
    live = {
        "subscription_id": os.environ["AZUREML_LIVE_SUBSCRIPTION_ID"],
        "resource_group": os.environ["AZUREML_LIVE_RESOURCE_GROUP"],
        "workspace_name": os.environ["AZUREML_LIVE_WORKSPACE"],
    }
    host = ProviderHost(project.root)
    try:
        host.configure({"azureml-pipelines:backend": "azureml"})
        stack = Stack(host)
        stack.up(ENDPOINT_TYPE, name, {**project.endpoint_inputs(name, image=LIVE_IMAGE), **live})
        endpoint_id = stack.state[name].id
        assert stack.state[name].outputs["rest_url"].endswith(endpoint_id)
        same = {**project.endpoint_inputs(name, image=LIVE_IMAGE), **live}
        assert stack.up(ENDPOINT_TYPE, name, same).op == "same"
        project.write(f"pipeline_defs/{name}/steps/prep/prep.py", "print('live v2')\n")
        changed = {**project.endpoint_inputs(name, image=LIVE_IMAGE), **live}
        assert stack.up(ENDPOINT_TYPE, name, changed).op == "update"
        assert stack.state[name].outputs["default_version"] == "1"
        schedule = {**project.schedule_inputs(endpoint_id, name=name, enabled=False), **live}
        stack.up(SCHEDULE_TYPE, "sched", schedule)
        assert stack.state["sched"].outputs["status"] == "Disabled"
        stack.destroy("sched")
        stack.destroy(name)
    finally:
        host.close()


def test_cluster_identity_pulls_the_image_when_given(project: Project) -> None:
    loaded = project.load()
    identity = (
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/id-cpu",
        "0000-client",
    )
    compiled = az.compile_steps(
        loaded.spec, loaded.folder, {"training": IMAGE_V1}, {"cpu-cluster": identity}
    )
    (env,) = compiled.environments.values()
    registry = env.docker.base_image_registry
    assert (
        registry.registry_identity.resource_id,
        registry.registry_identity.client_id,
    ) == identity
    assert registry.username is None and registry.password is None
    assert all(s._runconfig.environment is env for s in compiled.steps)


def test_a_deprecated_published_pipeline_is_read_as_out_of_service() -> None:
    from types import SimpleNamespace

    # The service's entity status enum has three values; Deprecated used to raise ValueError.
    record = az._published(SimpleNamespace(id="p1", name="n", version="h", status="Deprecated"))
    assert record.status is Status.DEPRECATED and record.status is not Status.ACTIVE
