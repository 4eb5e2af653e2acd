"""Fixtures for the Azure ML v2 wing: definitions written into tmp folders, the repository's own
samples."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.definitions.loader import LoadedPipeline, load_definitions
from tests.azureml_v2.v2_fixtures import REPO_ROOT


@pytest.fixture(scope="session")
def samples() -> tuple[LoadedPipeline, ...]:
    """The repository's pipeline definitions (both samples)."""
    return load_definitions([REPO_ROOT / "pipeline_defs"], REPO_ROOT).raise_if_invalid()


@pytest.fixture
def write_pipeline(tmp_path: Path) -> Callable[..., LoadedPipeline]:
    """Write one definition (YAML text + files) into a tmp repository and load it (valid)."""

    def write(yaml_text: str, files: dict[str, str], folder_name: str = "demo") -> LoadedPipeline:
        repo = tmp_path / "repo"
        repo.mkdir(exist_ok=True)
        (repo / "Pulumi.yaml").write_text("name: test\n")
        folder = repo / "pipeline_defs" / folder_name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pipeline.yaml").write_text(textwrap.dedent(yaml_text))
        for rel, text in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        loaded = load_definitions([folder], repo)
        return loaded.raise_if_invalid()[0]

    return write
