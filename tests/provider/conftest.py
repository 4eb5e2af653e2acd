"""Fixtures: a small Pulumi project with one pipeline in a tmp folder, the provider host started in
it (as the engine starts it in the project folder), configured for the local backend, its
backend wrapped by a fault plan the tests arm and read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.provider.local_backend import LocalBackend, LocalStore
from tests.provider.faults import PLAN_ENV, FaultPlan
from tests.provider.grpc_host import FAULTY_PROVIDERS, ProviderHost, Stack
from tests.provider.provider_fixtures import STORE, WORKSPACE, Project

LOCAL_CONFIG = {"azureml-pipelines:backend": "local", "azureml-pipelines:localStorePath": STORE}


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """A project folder with `Pulumi.yaml` and the `demo` pipeline."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "Pulumi.yaml").write_text("name: proj\nruntime: python\n")
    proj = Project(root)
    proj.write_pipeline()
    return proj


@pytest.fixture
def store(project: Project) -> LocalStore:
    """The local backend's store, where the provider host will find it (relative config path)."""
    return LocalStore(project.root / STORE)


@pytest.fixture
def backend(store: LocalStore) -> LocalBackend:
    """Direct access to the store, for out-of-band changes and assertions."""
    return LocalBackend(store, WORKSPACE)


@pytest.fixture
def plan(tmp_path: Path) -> FaultPlan:
    """Counters and faults of the host's backend."""
    return FaultPlan(tmp_path / "faults.sqlite")


@pytest.fixture
def host(project: Project, plan: FaultPlan) -> Iterator[ProviderHost]:
    """The real provider host, started in the project folder, configured for the local backend."""
    provider_host = ProviderHost(project.root, env={PLAN_ENV: str(plan.path)})
    provider_host.configure(LOCAL_CONFIG)
    yield provider_host
    provider_host.close()


@pytest.fixture
def stack(host: ProviderHost) -> Stack:
    """An engine stand-in on the host (project `proj`, stack `test`)."""
    return Stack(host, providers=FAULTY_PROVIDERS)
