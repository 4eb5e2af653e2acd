"""Configured paths mean the same from every working directory a process may start in: the project
root (where the CLI starts the program and the plugins), a subfolder (a user running `amlpipe`
there), or `infra/` (where the CLI started them before the layout moved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.paths import ProjectRootError, portable, project_path, project_root
from infra.provider.local_backend import LocalBackend, LocalStore
from tests.provider.grpc_host import ProviderHost, Stack
from tests.provider.provider_fixtures import WORKSPACE, Project

REPO_ROOT = Path(__file__).resolve().parents[2]
ENDPOINT_TYPE = "pulumi-python:dynamic/azureml:PipelineEndpoint"


@pytest.mark.parametrize("cwd", [".", "infra", "pipeline_defs/churn-train/steps"])
def test_the_project_root_and_configured_paths_do_not_depend_on_the_working_directory(
    cwd: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO_ROOT / cwd)
    assert project_root() == REPO_ROOT.resolve()
    assert project_path("pipeline_defs") == REPO_ROOT.resolve() / "pipeline_defs"
    assert project_path(".amlpipe/store.sqlite").parent == REPO_ROOT.resolve() / ".amlpipe"
    assert project_path("/abs/store.sqlite") == Path("/abs/store.sqlite")
    assert portable(REPO_ROOT / "docker") == "docker"


def test_outside_any_project_the_installed_checkout_is_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert project_root() == REPO_ROOT.resolve()


def test_no_project_anywhere_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infra.paths as paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(paths, "__file__", str(tmp_path / "site" / "infra" / "paths.py"))
    with pytest.raises(ProjectRootError, match=r"no Pulumi\.yaml at or above"):
        project_root()


@pytest.mark.parametrize("host_cwd", [".", "infra"])
def test_the_provider_host_keeps_its_local_store_at_the_project_root(
    tmp_path: Path, host_cwd: str
) -> None:
    root = tmp_path / "project"
    (root / "infra").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: proj\nruntime: python\n")
    project = Project(root)
    project.write_pipeline()
    host = ProviderHost(root / host_cwd)
    try:
        host.configure(
            {
                "azureml-pipelines:backend": "local",
                "azureml-pipelines:localStorePath": "state/store.sqlite",
            }
        )
        stack = Stack(host)
        assert stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs()).op == "create"
    finally:
        host.close()
    # One store, at the root, whichever folder the host started in; it holds the endpoint.
    assert (root / "state" / "store.sqlite").is_file()
    assert not (root / "infra" / "state").exists()
    backend = LocalBackend(LocalStore(root / "state" / "store.sqlite"), WORKSPACE)
    assert backend.get_endpoint(name="demo") is not None
