"""The repository's sample pipelines (pipeline_defs/) through the provider host and the Azure ML
compiler: what `pulumi up` on a local stack would publish for them."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from infra.components.pipelines import endpoint_args, load_pipeline_definitions, schedule_args
from infra.definitions.hashing import pipeline_digest
from infra.definitions.loader import LoadedPipeline
from infra.provider.azureml_v1 import compile as az
from infra.provider.azureml_v1.recurrence import make_recurrence
from infra.provider.local_backend import LocalBackend, LocalStore
from infra.provider.port import Status
from infra.provider.resources import endpoint_props, schedule_props
from tests.provider.faults import PLAN_ENV, FaultPlan
from tests.provider.grpc_host import (
    ENDPOINT_TYPE,
    FAULTY_PROVIDERS,
    SCHEDULE_TYPE,
    ProviderHost,
    Stack,
)
from tests.provider.provider_fixtures import IMAGE_V1, WORKSPACE, Project, placement

REPO_ROOT = Path(__file__).resolve().parents[2]


def _samples() -> tuple[LoadedPipeline, ...]:
    return load_pipeline_definitions(
        REPO_ROOT / "pipeline_defs", REPO_ROOT, ["cpu-cluster"], ["training"]
    )


def _endpoint_inputs(loaded: LoadedPipeline) -> dict[str, Any]:
    images = {"training": IMAGE_V1}
    digest = pipeline_digest(loaded, images).digest
    return endpoint_props(endpoint_args(loaded, placement(REPO_ROOT), images, digest, {}))


def test_samples_compile_to_azureml_steps() -> None:
    samples = _samples()
    assert samples, "no sample pipelines in pipeline_defs/"
    for loaded in samples:
        compiled = az.compile_steps(loaded.spec, loaded.folder, {"training": IMAGE_V1})
        assert [s.name for s in compiled.steps] == [s.name for s in loaded.spec.steps]
        for step, azure_step in zip(loaded.spec.steps, compiled.steps, strict=True):
            if step.kind == "r":
                assert azure_step._command == "Rscript"
        for schedule in loaded.spec.schedules:
            from infra.definitions.recurrence import effective_recurrence

            make_recurrence(effective_recurrence(schedule)).validate()


def test_samples_deploy_to_a_local_stack_from_the_repository(tmp_path: Path) -> None:
    store_path = tmp_path / "store.sqlite"
    plan = FaultPlan(tmp_path / "faults.sqlite")
    # the engine starts the host in the project folder
    host = ProviderHost(REPO_ROOT, env={PLAN_ENV: str(plan.path)})
    try:
        host.configure(
            {
                "azureml-pipelines:backend": "local",
                "azureml-pipelines:localStorePath": str(store_path),
            }
        )
        stack = Stack(host, providers=FAULTY_PROVIDERS)
        for loaded in _samples():
            spec = loaded.spec
            stack.up(ENDPOINT_TYPE, spec.name, _endpoint_inputs(loaded))
            endpoint_id = stack.state[spec.name].id
            for schedule in spec.schedules:
                args = schedule_args(spec, schedule, placement(REPO_ROOT), endpoint_id, True)
                stack.up(SCHEDULE_TYPE, args.name, schedule_props(args))
                assert stack.state[args.name].outputs["enabled"] is schedule.enabled
        plan.reset_counts()
        for loaded in _samples():
            assert stack.up(ENDPOINT_TYPE, loaded.spec.name, _endpoint_inputs(loaded)).op == "same"
        assert plan.counts().total_writes == 0
    finally:
        host.close()


def test_parallel_creates_on_the_host_threads_do_not_collide(
    project: Project, host: ProviderHost, store: LocalStore, plan: FaultPlan
) -> None:
    """The host serves up to 4 calls at once (the engine runs independent resources in
    parallel): the SQLite store takes them with one connection and transaction per call."""
    names = [f"par{i}" for i in range(8)]
    for name in names:
        project.write_pipeline(name)
    inputs = {name: project.endpoint_inputs(name) for name in names}
    stacks = {name: Stack(host, providers=FAULTY_PROVIDERS) for name in names}
    errors: list[BaseException] = []

    def create(name: str) -> None:
        try:
            stacks[name].up(ENDPOINT_TYPE, name, inputs[name])
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(n,)) for n in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    backend = LocalBackend(store, WORKSPACE)
    ids = set()
    for name in names:
        endpoint = backend.get_endpoint(name=name)
        assert endpoint is not None and endpoint.status is Status.ACTIVE
        ids.add(endpoint.id)
    assert len(ids) == len(names)
    assert plan.counts().writes == {"publish_pipeline": 8, "create_endpoint": 8}


@pytest.fixture(autouse=True)
def _no_store_in_repo() -> Any:
    """The repository-level test must not leave a store in the checkout."""
    before = (REPO_ROOT / ".amlpipe" / "local-backend.sqlite").exists()
    yield
    assert (REPO_ROOT / ".amlpipe" / "local-backend.sqlite").exists() == before
