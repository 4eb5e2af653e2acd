"""Each `amlpipe` subcommand imports what it needs and nothing else (start-up is the cost of a
subcommand that editors and hooks run on every save)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

# The one-step pipeline bench/cli_startup.py times `amlpipe run` with.
from bench.cli_startup import NOOP_PIPELINE

REPO_ROOT = Path(__file__).resolve().parents[2]
# What no definitions-only command may load: the deployment stack, the Azure SDKs, Docker.
NEVER = ("pulumi", "pulumi_azure_native", "azureml", "azure", "docker", "grpc")


def modules_loaded_by(tmp_path: Path, *argv: str) -> set[str]:
    """Modules in `sys.modules` after `amlpipe <argv>` ran in a fresh interpreter."""
    record = tmp_path / "modules.json"
    code = (
        "import json, sys\n"
        "from infra.cli import main\n"
        f"status = main({list(argv)!r})\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
        "sys.exit(status)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(record.read_text()))


def top_level(modules: set[str]) -> set[str]:
    return {name.split(".")[0] for name in modules}


@pytest.mark.parametrize(
    "argv",
    [("validate",), ("graph", "churn-train"), ("validate", "--json", "pipeline_defs")],
)
def test_definition_commands_load_no_deployment_azure_or_docker_code(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    loaded = modules_loaded_by(tmp_path, *argv)

    assert top_level(loaded).isdisjoint(NEVER), sorted(top_level(loaded) & set(NEVER))
    # Nor the hashing code or the runner, which only `hash` and `run` use.
    assert {"pathspec", "infra.definitions.hashing", "infra.runner.run"}.isdisjoint(loaded)


def test_validate_piped_prints_plain_lines_without_loading_rich(tmp_path: Path) -> None:
    assert "rich" not in top_level(modules_loaded_by(tmp_path, "validate"))


@pytest.mark.parametrize("argv", [("hash", "churn-train"), ("hash", "churn-train", "--json")])
def test_hash_loads_the_hashing_code_but_no_deployment_azure_docker_runner_or_rich(
    tmp_path: Path, argv: tuple[str, ...]
) -> None:
    loaded = modules_loaded_by(tmp_path, *argv)

    assert "infra.definitions.hashing" in loaded  # the test sees what the command used
    assert top_level(loaded).isdisjoint(NEVER), sorted(top_level(loaded) & set(NEVER))
    # Piped, the table is drawn without rich; threads only for trees of many bytes.
    assert "rich" not in top_level(loaded)
    assert not {m for m in loaded if m.startswith("concurrent.")}
    # Of the runner, only what registers its subcommands.
    runner = {m for m in loaded if m.startswith("infra.runner.")}
    assert runner <= {"infra.runner.commands", "infra.runner.errors"}, runner


def test_help_loads_none_of_the_spec_core(tmp_path: Path) -> None:
    record = tmp_path / "modules.json"
    code = (
        "import json, sys\n"
        "from infra.cli import build_parser\n"
        "build_parser().format_help()\n"
        f"open({str(record)!r}, 'w').write(json.dumps(sorted(sys.modules)))\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)
    loaded = set(json.loads(record.read_text()))

    assert not {m for m in loaded if m.startswith(("pydantic", "ruamel", "yaml", "rich"))}
    assert "infra.definitions.model" not in loaded


def test_run_with_processes_loads_no_deployment_azure_or_docker_code(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    (defs / "noop" / "code").mkdir(parents=True)
    (defs / "noop" / "pipeline.yaml").write_text(NOOP_PIPELINE)
    run_dir = tmp_path / "run"

    loaded = modules_loaded_by(
        tmp_path, "run", "noop", "--defs", str(defs), "--executor", "process",
        "--run-dir", str(run_dir),
    )  # fmt: skip

    assert (run_dir / "summary.json").is_file()  # the step did run
    assert top_level(loaded).isdisjoint(NEVER), sorted(top_level(loaded) & set(NEVER))
    assert "infra.runner.docker_engine" not in loaded


def sdk_modules_after_connect(tmp_path: Path, docker_host: str) -> dict[str, bool]:
    """Whether `connect()` (to `docker_host`, unreachable) loaded the SDK, paramiko, and the
    SDK's ssh transport, in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "from infra.runner.docker_engine import connect\n"
        "from infra.runner.errors import RunnerError\n"
        "try:\n"
        "    connect()\n"
        "except RunnerError:\n"
        "    pass\n"
        "import docker.transport\n"
        "print(json.dumps({'docker': 'docker' in sys.modules,\n"
        "                  'paramiko': 'paramiko' in sys.modules,\n"
        "                  'ssh': hasattr(docker.transport, 'SSHHTTPAdapter')}))\n"
    )
    env = {**os.environ, "DOCKER_HOST": docker_host}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    found: dict[str, bool] = json.loads(result.stdout)
    return found


def test_the_docker_runner_loads_the_sdk_without_paramiko_for_a_socket_host(
    tmp_path: Path,
) -> None:
    found = sdk_modules_after_connect(tmp_path, f"unix://{tmp_path}/no-engine.sock")

    assert found == {"docker": True, "paramiko": False, "ssh": False}


@pytest.mark.skipif(importlib.util.find_spec("paramiko") is None, reason="paramiko not installed")
def test_an_ssh_docker_host_still_gets_the_sdk_with_its_ssh_transport() -> None:
    code = (
        "import sys\n"
        "from infra.runner.docker_engine import _import_docker_sdk\n"
        "_import_docker_sdk()\n"
        "import docker.transport\n"
        "assert 'paramiko' in sys.modules and hasattr(docker.transport, 'SSHHTTPAdapter')\n"
    )
    env = {**os.environ, "DOCKER_HOST": "ssh://nobody@127.0.0.1:1"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
