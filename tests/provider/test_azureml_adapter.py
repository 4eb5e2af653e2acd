"""The Azure ML v1 wing: the real azureml step, environment, run configuration and recurrence
objects it builds (no workspace needed), its error classification and retry policy, and opt-in
live tests against a real workspace."""

from __future__ import annotations

import os
from typing import Any

import pytest

from infra.definitions.model import Frequency, Recurrence, WeekDay
from infra.definitions.recurrence import effective_recurrence
from infra.provider.azureml_v1 import compile as az
from infra.provider.azureml_v1 import recurrence as rec_mod
from infra.provider.azureml_v1 import retry
from infra.provider.azureml_v1.adapter import AzureMLBackend, _published
from infra.provider.port import BackendError, RegistryIdentity, Status
from tests.provider.provider_fixtures import IMAGE_V1, WORKSPACE, Project


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

    rec = rec_mod.make_recurrence(effective_recurrence(project.load().spec.schedules[0]))
    assert isinstance(rec, ScheduleRecurrence)
    assert (rec.frequency, rec.interval, rec.hours, rec.minutes) == ("Day", 1, [2], [30])
    assert rec.time_zone is TimeZone.UTC and rec.week_days is None
    back = rec_mod.recurrence_from_azure(rec)
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
    rec = rec_mod.make_recurrence(weekly)
    assert rec.week_days == ["Monday", "Friday"] and rec.start_time == "2026-01-05T06:00:00"
    assert rec_mod.recurrence_from_azure(rec) == weekly
    with pytest.raises(BackendError, match="Windows names"):
        rec_mod.make_recurrence(weekly.model_copy(update={"time_zone": "Europe/Berlin"}))


LIVE_VARS = (
    "AZUREML_LIVE_SUBSCRIPTION_ID",
    "AZUREML_LIVE_RESOURCE_GROUP",
    "AZUREML_LIVE_WORKSPACE",
)
_missing = [v for v in LIVE_VARS if not os.environ.get(v)]


@pytest.mark.live
@pytest.mark.skipif(bool(_missing), reason=f"live Azure ML test: set {', '.join(LIVE_VARS)}")
def test_live_workspace_endpoint_lookup_of_an_unknown_name_is_none() -> None:
    backend = AzureMLBackend(
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

    from tests.provider.grpc_host import ENDPOINT_TYPE, SCHEDULE_TYPE, ProviderHost, Stack

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
    identity = RegistryIdentity(
        "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
        "userAssignedIdentities/id-cpu",
        "0000-client",
    )
    compiled = az.compile_steps(
        loaded.spec, loaded.folder, {"training": IMAGE_V1}, {"cpu-cluster": identity}
    )
    (env,) = compiled.environments.values()
    registry = env.docker.base_image_registry
    assert registry.registry_identity.resource_id == identity.resource_id
    assert registry.registry_identity.client_id == identity.client_id
    assert registry.username is None and registry.password is None
    assert all(s._runconfig.environment is env for s in compiled.steps)


def test_a_deprecated_published_pipeline_is_read_as_out_of_service() -> None:
    from types import SimpleNamespace

    # The service's entity status enum has three values; Deprecated used to raise ValueError.
    record = _published(
        SimpleNamespace(id="p1", name="n", version="h", status="Deprecated", description="")
    )
    assert record.status is Status.DEPRECATED and record.status is not Status.ACTIVE


def test_run_configuration_spells_out_docker_image_identity_and_own_python(
    compiled: az.CompiledPipeline,
) -> None:
    for step in compiled.steps:
        config = step._runconfig
        # RunConfiguration's own default is Docker off: it must be on explicitly.
        assert config.docker.use_docker is True and config.docker.shm_size == "2g"
        assert (config.framework, config.communicator, config.node_count) == ("Python", "None", 1)
        env = config.environment
        assert env.docker.base_image == IMAGE_V1 and env.docker.base_dockerfile is None
        assert env.python.user_managed_dependencies is True
        assert env.python.interpreter_path == "python"


def test_recurrence_without_start_time_is_sent_with_a_fixed_past_start_in_its_zone() -> None:
    from azureml.pipeline.core.schedule import TimeZone

    daily = Recurrence(
        frequency=Frequency.DAY, hours=[6], minutes=[0], time_zone="W. Europe Standard Time"
    )
    sent = rec_mod.make_recurrence(daily)
    # A start time makes the first run the next computed time (none means "run now"), and the
    # zone applies to the start time, hence to hours and minutes.
    assert sent.start_time == rec_mod.DEFAULT_START_TIME == "2000-01-01T00:00:00"
    assert sent.time_zone is TimeZone.WEuropeStandardTime
    assert rec_mod.make_recurrence(daily).start_time == sent.start_time  # stable: no diff
    assert rec_mod.recurrence_from_azure(sent) == daily  # read back as "no start time"
    paused = rec_mod.make_recurrence(daily, start_time=rec_mod.PAUSED_START_TIME)
    assert paused.start_time == "2100-01-01T00:00:00"


def test_recurrence_start_time_read_back_in_another_spelling_is_the_same() -> None:
    from datetime import datetime

    sent = rec_mod.make_recurrence(
        Recurrence(frequency=Frequency.HOUR, interval=2, start_time="2026-03-01T05:30:00")
    )
    sent.start_time = datetime(2026, 3, 1, 5, 30)  # the service may answer with a datetime
    assert rec_mod.recurrence_from_azure(sent).start_time == "2026-03-01T05:30:00"
    sent.start_time = "2000-01-01T00:00:00Z"
    assert rec_mod.recurrence_from_azure(sent).start_time is None


class _Response:
    """What msrest reads from a `requests` response to build the SDK's error."""

    def __init__(self, status_code: int) -> None:
        self.status_code = status_code
        self.reason = f"reason {status_code}"
        self.headers: dict[str, str] = {}
        self.text = '{"error": {"message": "service says no"}}'

    def json(self) -> dict[str, Any]:
        return {"error": {"message": "service says no"}}

    def raise_for_status(self) -> None:
        import requests

        raise requests.HTTPError(self.reason)


def _http_error(code: int) -> Exception:
    """The exception azureml's REST client raises for an HTTP error answer."""
    from azureml.pipeline.core._restclients.aeva import models
    from azureml.pipeline.core._restclients.aeva.models.error_response import (
        ErrorResponseException,
    )
    from msrest import Deserializer

    deserialize = Deserializer({k: v for k, v in vars(models).items() if isinstance(v, type)})
    return ErrorResponseException(deserialize, _Response(code))


def test_errors_are_classified_by_http_status_and_type_not_by_message() -> None:
    import requests
    from azure.core.exceptions import HttpResponseError, ServiceRequestError

    assert retry.is_transient(_http_error(429)) and retry.is_transient(_http_error(503))
    assert not retry.is_transient(_http_error(400)) and not retry.is_transient(_http_error(404))
    assert retry.is_not_found(_http_error(404)) and not retry.is_not_found(_http_error(500))
    # message text decides nothing
    assert not retry.is_not_found(RuntimeError("PipelineEndpoint not found (404)"))
    assert not retry.is_transient(RuntimeError("HTTP 503 timeout, connection reset"))
    assert retry.is_transient(requests.ConnectionError("reset by peer"))
    assert retry.is_transient(ServiceRequestError("dns"))
    error = HttpResponseError("throttled")
    error.status_code = 429
    assert retry.is_transient(error)
    try:  # a wrapper keeps the network error as its cause
        try:
            raise requests.Timeout("read timed out")
        except requests.Timeout as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert retry.is_transient(outer)


def test_transient_errors_are_retried_with_backoff_and_bounded() -> None:
    delays: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise _http_error(429)
        return "ok"

    assert retry.call("op", flaky, sleep=delays.append) == "ok"
    assert len(delays) == 2 and all(d > 0 for d in delays)

    def always_throttled() -> str:
        raise _http_error(503)

    with pytest.raises(BackendError, match=r"op failed \(HTTP 503, attempt 5/5\)"):
        retry.call("op", always_throttled, sleep=delays.append)
    assert len(delays) == 2 + 4

    def bad_request() -> str:
        raise ValueError("PipelineEndpoint already exists with the given name")

    with pytest.raises(BackendError, match=r"attempt 1/5\): ValueError"):
        retry.call("op", bad_request, sleep=delays.append)
    assert len(delays) == 6
