"""Fixtures for the local runner: the real `amlpipe` entry point, a real Docker engine, the training
image built once per session from docker/ on the Debian test base, and small throw-away pipelines.

Docker tests skip (with the reason) when no engine answers, except in CI, where
AMLPIPE_REQUIRE_DOCKER=1 turns a missing engine into a failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("AMLPIPE_TEST_BASE_IMAGE", "local/azureml-base:bookworm")


@dataclass(frozen=True)
class CliResult:
    """Exit code and output of one `amlpipe` invocation."""

    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """stdout and stderr together (messages may go to either)."""
        return self.stdout + self.stderr


def amlpipe(
    *args: str | Path, env: dict[str, str] | None = None, timeout: float = 300
) -> CliResult:
    """Run the real CLI (`python -m infra.cli`) from the repository root."""
    completed = subprocess.run(
        [sys.executable, "-m", "infra.cli", *map(str, args)],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {}), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return CliResult(completed.returncode, completed.stdout, completed.stderr)


@pytest.fixture(scope="session")
def cli() -> Callable[..., CliResult]:
    """The real `amlpipe` CLI as a function (test modules cannot import conftest helpers)."""
    return amlpipe


@pytest.fixture(scope="session")
def base_image() -> str:
    """The Debian base docker/ is built on in tests (made by `.ci/docker.sh start`)."""
    return BASE_IMAGE


def _unavailable(reason: str) -> None:
    if os.environ.get("AMLPIPE_REQUIRE_DOCKER") == "1":
        pytest.fail(f"{reason} (AMLPIPE_REQUIRE_DOCKER=1: the Docker tests must run here)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A client of a running Docker engine (skip, or fail in CI, when none answers)."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        _unavailable(f"no Docker engine reachable ({exc}); start one with `.ci/docker.sh start`")
    yield client
    client.close()


@pytest.fixture(scope="session")
def training_image(docker_client: Any) -> str:
    """docker/ built once per session by `amlpipe build` on the Debian base (cached by tag)."""
    from docker.errors import ImageNotFound

    try:
        docker_client.images.get(BASE_IMAGE)
    except ImageNotFound:
        _unavailable(f"base image {BASE_IMAGE} missing; build it with `.ci/docker.sh start`")
    result = amlpipe("build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", timeout=900)
    assert result.code == 0, result.output
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def run_containers(docker_client: Any) -> Callable[[Path], list[Any]]:
    """Containers (any state) that `amlpipe run --run-dir DIR` labelled with DIR."""

    def find(run_dir: Path) -> list[Any]:
        label = f"amlpipe.run-dir={run_dir.resolve()}"
        return list(docker_client.containers.list(all=True, filters={"label": label}))

    return find


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Callable[[str, dict[str, str]], Path]:
    """Write a pipeline definition (`pipeline.yaml` + step files) and return its defs folder."""

    def make(yaml_text: str, files: dict[str, str]) -> Path:
        defs = tmp_path / "defs"
        folder = defs / "demo"
        folder.mkdir(parents=True)
        (folder / "pipeline.yaml").write_text(textwrap.dedent(yaml_text), encoding="utf-8")
        for name, text in files.items():
            path = folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text), encoding="utf-8")
        return defs

    return make
