"""The Azure ML v1 wing end to end through the real azureml SDK, offline: the adapter drives
`Pipeline.publish`, `PipelineEndpoint.publish/add_default/set_default/archive/reactivate` and
`Schedule.create_for_pipeline_endpoint/update` for both sample pipelines, and the tests read what
the service would have received from the SDK's own dry-run service caller (see azureml_dryrun.py):
graph nodes and edges, mounts, parameters, run configuration and schedule REST bodies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from msrest import Serializer

from infra.components.pipelines import load_pipeline_definitions
from infra.definitions.loader import LoadedPipeline
from infra.definitions.recurrence import effective_recurrence
from infra.definitions.refs import parse_argument, step_inputs
from infra.provider.azureml_v1 import retry
from infra.provider.azureml_v1.recurrence import DEFAULT_START_TIME, PAUSED_START_TIME
from infra.provider.port import PipelineBuild, RegistryIdentity, ScheduleSettings, Status
from tests.provider.azureml_dryrun import (
    IDENTITY_CLIENT_ID,
    IDENTITY_ID,
    DryRun,
    dry_run,
    http_error,
)
from tests.provider.provider_fixtures import OWNER

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE = "acrstack.azurecr.io/training:ctx-0123456789abcdef0123"
SAMPLES = load_pipeline_definitions(
    REPO_ROOT / "pipeline_defs", REPO_ROOT, ["cpu-cluster"], ["training"]
)
ARM = "https://management.core.windows.net/"


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries keep their policy, with a tiny first delay (tests check behaviour, not time)."""
    monkeypatch.setattr(retry, "INITIAL_DELAY_S", 0.001)
    monkeypatch.setattr(retry, "MAX_DELAY_S", 0.01)


def _build(loaded: LoadedPipeline, content_hash: str = "hash-v1") -> PipelineBuild:
    return PipelineBuild(
        loaded.spec.name,
        loaded.spec,
        loaded.folder,
        {"training": IMAGE},
        content_hash,
        registry_identities={"cpu-cluster": RegistryIdentity(IDENTITY_ID, IDENTITY_CLIENT_ID)},
        owner=OWNER,
    )


def _graph(run: DryRun, pipeline_id: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """The graph of a published pipeline, its nodes by step name and their modules."""
    entity = run.caller._pipeline_entities[pipeline_id]
    graph = run.caller._graph_entities[entity.graph_id]
    modules = {n.id: run.caller._module_entities[n.module_id] for n in graph.module_nodes}
    nodes = {modules[n.id].name: n for n in graph.module_nodes}
    return graph, nodes, {modules[n.id].name: modules[n.id] for n in graph.module_nodes}


def _parameters(node: Any) -> dict[str, Any]:
    return {p.name: p.value for p in node.module_parameters}


@pytest.mark.parametrize("loaded", SAMPLES, ids=[s.spec.name for s in SAMPLES])
def test_sample_publishes_the_graph_the_service_would_receive(loaded: LoadedPipeline) -> None:
    spec = loaded.spec
    run = dry_run()
    record = run.backend.publish_pipeline(_build(loaded))
    assert (record.name, record.version_tag, record.status) == (spec.name, "hash-v1", Status.ACTIVE)
    graph, nodes, modules = _graph(run, record.id)
    assert sorted(nodes) == sorted(s.name for s in spec.steps)

    # edges: one per upstream output a step reads, between the right nodes and ports
    node_names = {n.id: name for name, n in nodes.items()}
    edges = {
        (
            node_names[e.source_output_port.node_id],
            e.source_output_port.port_name,
            node_names[e.destination_input_port.node_id],
        )
        for e in graph.edges
    }
    expected_edges = {
        (ref.step, f"{ref.step}_{ref.output}", step.name)
        for step in spec.steps
        for ref in step_inputs(step.arguments)
    }
    assert expected_edges and edges == expected_edges

    interface = run.caller._graph_interfaces[run.caller._pipeline_entities[record.id].graph_id]
    assert {p.name: p.default_value for p in interface.parameters} == {
        name: p.default for name, p in spec.parameters.items()
    }

    for step in spec.steps:
        node, module = nodes[step.name], modules[step.name]
        params = _parameters(node)
        assert params["Target"] == "cpu-cluster" and params["MLCComputeType"] == "AmlCompute"
        assert params["DockerEnabled"] == "true"
        # inputs are mounted read-only; outputs are mounted and uploaded to the workspace store
        assert {i.name: i.data_store_mode for i in module.structured_interface.inputs} == {
            f"{ref.step}_{ref.output}": "mount" for ref in step_inputs(step.arguments)
        }
        assert {
            (o.name, o.data_store_mode, o.data_store_name) for o in node.module_output_settings
        } == {(f"{step.name}_{out}", "mount", "workspaceblobstore") for out in step.outputs}
        # arguments: parameters stay parameters (set per run), everything else literal text
        arguments = [(a.value_type, a.value) for a in module.structured_interface.arguments]
        tokens = [parse_argument(a) for a in step.args]
        parameter_args = [v for kind, v in arguments if kind == "Parameter"]
        assert parameter_args == [t.name for t in tokens if type(t).__name__ == "ParamRef"]
        if step.kind == "r":
            assert params["Command"] == "Rscript" and arguments[0] == ("Literal", step.script)
        elif step.kind == "python":
            assert params["Script"] == step.script

        config = json.loads(node.runconfig)
        assert config["docker"]["useDocker"] is True
        assert (config["target"], config["nodeCount"], config["framework"]) == (
            "cpu-cluster",
            1,
            "Python",
        )
        env = config["environment"]
        assert env["python"]["userManagedDependencies"] is True
        assert env["python"]["interpreterPath"] == "python"
        assert env["docker"]["baseImage"] == IMAGE and env["docker"]["baseDockerfile"] is None
        assert env["docker"]["baseImageRegistry"] == {
            "address": "acrstack.azurecr.io",
            "username": None,
            "password": None,
            "registryIdentity": {"resourceId": IDENTITY_ID, "clientId": IDENTITY_CLIENT_ID},
        }
        assert env["environmentVariables"] == step.environment or step.environment == {}

    # every step's code folder was snapshotted, with its files
    uploaded = sorted(f for files in run.uploader.uploads.values() for f in files)
    expected = sorted(
        str(p.relative_to(loaded.folder / s.code))
        for s in spec.steps
        for p in (loaded.folder / s.code).rglob("*")
        if p.is_file()
    )
    assert uploaded == expected
    assert set(run.audiences) == {ARM}  # the pipelines service is called with ARM tokens


def test_endpoint_versions_default_archive_and_reactivate_through_the_sdk() -> None:
    loaded = SAMPLES[0]
    name = loaded.spec.name
    run = dry_run()
    first = run.backend.publish_pipeline(_build(loaded, "hash-v1"))
    endpoint = run.backend.create_endpoint(name, "desc", first.id, OWNER)
    assert (endpoint.name, endpoint.default_version, endpoint.status) == (name, "0", Status.ACTIVE)
    assert run.backend.get_endpoint(name=name) == endpoint

    second = run.backend.publish_pipeline(_build(loaded, "hash-v2"))
    endpoint = run.backend.add_default_version(endpoint.id, second.id)
    assert endpoint.default_version == "1" and endpoint.default.pipeline.id == second.id
    endpoint = run.backend.set_default_version(endpoint.id, "0")
    assert endpoint.default.pipeline == first

    run.backend.disable_pipeline(second.id)
    assert run.backend.get_endpoint(endpoint.id).version("1").pipeline.status is Status.DISABLED
    assert [p.id for p in run.backend.find_published(name)] == [first.id]

    run.backend.archive_endpoint(endpoint.id)
    archived = run.backend.get_endpoint(endpoint_id=endpoint.id)
    assert archived is not None and archived.status is Status.DISABLED and archived.name != name
    assert run.backend.get_endpoint(name=name) is None  # the name is free again
    run.backend.archive_endpoint(endpoint.id)  # archiving twice is a no-op
    back = run.backend.reactivate_endpoint(endpoint.id, name)
    assert (back.name, back.status, back.default_version) == (name, Status.ACTIVE, "0")
    assert run.backend.get_endpoint(endpoint_id="no-such-id") is None


def test_deprecated_versions_read_as_deprecated() -> None:
    loaded = SAMPLES[0]
    run = dry_run()
    published = run.backend.publish_pipeline(_build(loaded))
    endpoint = run.backend.create_endpoint(loaded.spec.name, "", published.id, OWNER)
    run.caller._pipeline_entities[published.id].entity_status = "1"  # the service deprecated it
    version = run.backend.get_endpoint(endpoint.id).version("0")
    assert version.pipeline.status is Status.DEPRECATED
    assert run.backend.find_published(loaded.spec.name) == []


def _lose_response_once(run: DryRun, method: str, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The service applies the call, then the answer is lost (a gateway timeout)."""
    real = getattr(run.caller, method)
    calls: list[int] = []

    def applied_then_lost(*args: Any, **kwargs: Any) -> Any:
        result = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            raise http_error(504, "gateway timeout")
        return result

    monkeypatch.setattr(run.caller, method, applied_then_lost)
    return calls


def test_retried_publish_after_a_lost_response_publishes_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = SAMPLES[0]
    run = dry_run()
    calls = _lose_response_once(run, "create_pipeline_async", monkeypatch)
    record = run.backend.publish_pipeline(_build(loaded))
    assert calls == [1]  # read back, found, not published again
    assert [p.id for p in run.caller.published()] == [record.id]


def test_retried_add_default_after_a_lost_response_adds_one_version(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = SAMPLES[0]
    run = dry_run()
    first = run.backend.publish_pipeline(_build(loaded, "hash-v1"))
    endpoint = run.backend.create_endpoint(loaded.spec.name, "", first.id, OWNER)
    second = run.backend.publish_pipeline(_build(loaded, "hash-v2"))
    calls = _lose_response_once(run, "update_pipeline_endpoint_async", monkeypatch)
    endpoint = run.backend.add_default_version(endpoint.id, second.id)
    assert calls == [1]
    assert [(v.version, v.pipeline.id) for v in endpoint.versions] == [
        ("0", first.id),
        ("1", second.id),
    ]
    assert endpoint.default_version == "1"
    # asked again (e.g. the provider's own retry), it is already done
    assert run.backend.add_default_version(endpoint.id, second.id) == endpoint


def test_retried_endpoint_and_schedule_creates_after_lost_responses_create_one_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = SAMPLES[0]
    run = dry_run()
    published = run.backend.publish_pipeline(_build(loaded))
    endpoint_calls = _lose_response_once(run, "create_pipeline_endpoint_async", monkeypatch)
    endpoint = run.backend.create_endpoint(loaded.spec.name, "", published.id, OWNER)
    schedule_calls = _lose_response_once(run, "create_schedule_async", monkeypatch)
    settings = ScheduleSettings(effective_recurrence(loaded.spec.schedules[0]))
    run.backend.create_schedule("nightly", endpoint.id, "exp", settings, OWNER)
    assert endpoint_calls == [1] and schedule_calls == [1]
    assert len(run.caller.endpoints()) == 1 and len(run.caller.schedules()) == 1


class _Recorder:
    """Schedule REST bodies, serialized by msrest as the SDK's REST client sends them."""

    def __init__(self, run: DryRun, monkeypatch: pytest.MonkeyPatch) -> None:
        from azureml.pipeline.core._restclients.aeva import models

        self.bodies: list[tuple[str, dict[str, Any]]] = []
        serializer = Serializer({k: v for k, v in vars(models).items() if isinstance(v, type)})
        create, update = run.caller.create_schedule_async, run.caller.update_schedule_async

        def on_create(info: Any) -> Any:
            self.bodies.append(("POST", serializer.body(info, "ScheduleCreationInfo")))
            return create(info)

        def on_update(schedule_id: str, updated: Any) -> Any:
            self.bodies.append(("PUT", serializer.body(updated, "PipelineScheduleEntity")))
            return update(schedule_id, updated)

        monkeypatch.setattr(run.caller, "create_schedule_async", on_create)
        monkeypatch.setattr(run.caller, "update_schedule_async", on_update)


def _endpoint(run: DryRun, loaded: LoadedPipeline) -> str:
    published = run.backend.publish_pipeline(_build(loaded))
    return run.backend.create_endpoint(loaded.spec.name, "", published.id, OWNER).id


@pytest.mark.parametrize("loaded", SAMPLES, ids=[s.spec.name for s in SAMPLES])
def test_active_schedule_rest_body_has_a_past_start_time_in_its_zone(
    loaded: LoadedPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = dry_run()
    endpoint_id = _endpoint(run, loaded)
    recorder = _Recorder(run, monkeypatch)
    for schedule in loaded.spec.schedules:
        recurrence = effective_recurrence(schedule)
        settings = ScheduleSettings(recurrence, schedule.description, dict(schedule.parameters))
        record = run.backend.create_schedule(schedule.name, endpoint_id, "exp", settings, OWNER)
        method, body = recorder.bodies[-1]
        assert method == "POST"
        rest = body["Recurrence"]
        # a start time in the past: the first run is the next computed time, never "now"
        assert rest["StartTime"] == DEFAULT_START_TIME
        assert rest["TimeZone"] == recurrence.time_zone
        assert rest["Interval"] == recurrence.interval
        assert rest.get("Schedule", {}).get("Hours") == recurrence.hours
        assert rest.get("Schedule", {}).get("Minutes") == recurrence.minutes
        assert body["PipelineEndpointId"] == endpoint_id and body["Name"] == schedule.name
        submission = body["PipelineSubmissionInfo"]
        assert submission["ExperimentName"] == "exp"
        assert submission.get("ParameterAssignments", {}) == {
            k: str(v) for k, v in schedule.parameters.items()
        }
        assert "Status" not in body and "EntityStatus" not in body  # the API has no such field
        # read back: same settings (parameters are not reported by the SDK), so no diff
        assert record.settings.recurrence == recurrence
        assert record.settings.status is Status.ACTIVE
        assert run.backend.get_schedule(record.id) == record


def test_paused_schedule_is_created_far_in_the_future_and_disabled_before_it_can_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = SAMPLES[0]
    run = dry_run()
    endpoint_id = _endpoint(run, loaded)
    recorder = _Recorder(run, monkeypatch)
    recurrence = effective_recurrence(loaded.spec.schedules[0])
    paused = ScheduleSettings(recurrence, "nightly", {}, Status.DISABLED)
    record = run.backend.create_schedule("nightly", endpoint_id, "exp", paused, OWNER)
    (create_method, created), (update_method, updated) = recorder.bodies
    assert create_method == "POST" and created["Recurrence"]["StartTime"] == PAUSED_START_TIME
    assert update_method == "PUT" and updated["EntityStatus"] in ("2", "Disabled")
    assert updated["Recurrence"]["StartTime"] == DEFAULT_START_TIME
    assert record.settings.status is Status.DISABLED and record.settings.recurrence == recurrence
    (stored,) = run.caller.schedules()
    assert stored.entity_status in ("2", "Disabled")

    # un-pausing is one update: active, with the past start time (first run: next computed time)
    active = ScheduleSettings(recurrence, "nightly", {}, Status.ACTIVE)
    record = run.backend.update_schedule(record.id, active)
    method, body = recorder.bodies[-1]
    assert method == "PUT" and body["EntityStatus"] in ("0", "Active")
    assert body["Recurrence"]["StartTime"] == DEFAULT_START_TIME
    assert record.settings.status is Status.ACTIVE
    assert run.backend.find_schedules(endpoint_id, "nightly") == [record]
    assert run.backend.get_schedule("no-such-schedule") is None
