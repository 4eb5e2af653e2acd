"""`amlpipe validate|graph|hash` through the real console entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_validate_accepts_the_repository_samples() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", "validate", "pipeline_defs"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout.count("ok ") >= 2


def test_validate_json_lists_valid_pipelines(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repo()

    code = main(["validate", "--json", str(folder.parent)])

    assert code == 0
    assert json.loads(capsys.readouterr().out) == {
        "valid": True,
        "pipelines": ["demo"],
        "errors": [],
    }


def test_validate_reports_a_missing_path(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = main(["validate", str(tmp_path / "nope")])

    assert code == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_graph_prints_mermaid_and_dot(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repo()

    assert main(["graph", "demo", "--defs", str(folder.parent)]) == 0
    assert "prep -- data --> train" in capsys.readouterr().out
    assert main(["graph", "demo", "--dot", "--defs", str(folder.parent)]) == 0
    assert '"prep" -> "train" [label="data"];' in capsys.readouterr().out


def test_graph_of_unknown_pipeline_names_the_known_ones(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repo()

    assert main(["graph", "nope", "--defs", str(folder.parent)]) == 1
    assert "known: demo" in capsys.readouterr().err


def test_hash_json_has_pipeline_and_step_hashes(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repo()

    code = main(
        ["hash", "demo", "--json", "--defs", str(folder.parent), "--image", "training=img:1"]
    )

    payload = json.loads(capsys.readouterr().out)
    assert code == 0
    assert len(payload["hash"]) == 64
    assert set(payload["steps"]) == {"prep", "train"}
    assert payload["steps"]["prep"]["files"] == 2
    assert payload["images"] == {"training": "img:1"}


def _repo_with_stack(make_repo: Callable[..., Path], stack_yaml: str) -> Path:
    """A tmp repository with the real Pulumi.yaml and one stack file `Pulumi.other.yaml`."""
    folder = make_repo()
    repo = folder.parents[1]
    (repo / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    (repo / "Pulumi.other.yaml").write_text(stack_yaml)
    return repo


def test_validate_with_a_stack_rejects_a_cluster_that_stack_lacks(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(
        make_repo,
        "config:\n"
        "  azureml-pipelines:clusters:\n"
        "    - {name: gpu-cluster, vmSize: NC6, maxNodes: 1}\n",
    )
    monkeypatch.chdir(repo)

    code = main(["validate", "--stack", "other", "pipeline_defs"])

    err = capsys.readouterr().err
    assert code == 1
    assert (
        "pipeline_defs/demo/pipeline.yaml:4: compute: unknown compute 'cpu-cluster' "
        "(known clusters: gpu-cluster)"
    ) in err


def test_validate_with_a_stack_accepts_names_the_stack_provides(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_with_stack(make_repo, "config:\n  azureml-pipelines:location: northeurope\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "pipeline_defs"]) == 0


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A process of this checkout's code (not an installed copy) in `cwd`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_validate_with_a_stack_refuses_a_colliding_stack_name_as_the_program_does(
    make_repo: Callable[..., Path],
) -> None:
    # feature_x and feature-x make the same resource names: the program refuses to run either.
    repo = _repo_with_stack(make_repo, "config: {}\n")
    for stack in ("feature_x", "feature-x"):
        (repo / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    stack_file = repo / "Pulumi.feature_x.yaml"

    program = _run(
        [str(REPO_ROOT / "tests" / "program" / "mock_program.py"), str(stack_file)], repo
    )
    cli = _run(["-m", "infra.cli", "validate", "--stack", "feature_x", "pipeline_defs"], repo)

    message = (
        "error: invalid stack configuration (1 problem(s)):\n"
        "  - stack 'feature_x': maps to the same resource names as stack 'feature-x' "
        "(Pulumi.feature-x.yaml); rename one of them\n"
    )
    assert (program.returncode, program.stderr) == (1, message)
    assert (cli.returncode, cli.stderr, cli.stdout) == (program.returncode, message, "")


def test_validate_with_a_stack_accepts_stack_names_that_do_not_collide(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    for stack in ("feature-x", "feature-y", "feature-x2"):
        (repo / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "feature-x", "pipeline_defs"]) == 0


def test_validate_with_an_unknown_stack_names_the_known_ones(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "prod"]) == 2
    assert "stacks: other" in capsys.readouterr().err


def test_validate_with_a_stack_file_that_is_not_yaml_names_the_file_and_line(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    (repo / "Pulumi.broken.yaml").write_text("config:\n  azureml-pipelines:location: [westeurope\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "broken", "pipeline_defs"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Pulumi.broken.yaml line ")
    assert "YAML syntax error" in err and "Traceback" not in err
