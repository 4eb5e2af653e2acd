"""Each `amlpipe` subcommand imports what it needs and nothing else (start-up is the cost of a
subcommand that editors and hooks run on every save)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

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
