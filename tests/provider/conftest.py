"""Fixtures: a small Pulumi project with one pipeline in a tmp folder, the provider host started in
it (as the engine starts it in the project folder), configured for the local backend.

pytest runs with `--import-mode=importlib`, so this folder is put on sys.path for the helpers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpc_host import ProviderHost, Stack
from provider_fixtures import STORE, WORKSPACE, Project

from infra.provider.local_backend import LocalBackend, LocalStore


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
def host(project: Project) -> Iterator[ProviderHost]:
    """The real provider host, started in the project folder, configured for the local backend."""
    provider_host = ProviderHost(project.root)
    provider_host.configure(
        {"azureml-pipelines:backend": "local", "azureml-pipelines:localStorePath": STORE}
    )
    yield provider_host
    provider_host.close()


@pytest.fixture
def stack(host: ProviderHost) -> Stack:
    """An engine stand-in on the host."""
    return Stack(host)
