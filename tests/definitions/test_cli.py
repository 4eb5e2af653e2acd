"""`amlpipe validate|graph|hash` through the real console entry point."""

from __future__ import annotations

import json
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
