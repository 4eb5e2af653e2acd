"""Fixtures for the spec core: small pipeline repositories written into tmp folders."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

TWO_STEP_PIPELINE = """\
# a comment that must not change any hash
name: demo
experiment: demo-exp
compute: cpu-cluster
parameters:
  rows: {type: int, default: 100}
  rate: {type: float, default: 0.5}
steps:
  - name: prep
    kind: python
    code: steps/prep
    script: prep.py
    args: [--rows, '${{parameters.rows}}', --out, '${{outputs.data}}']
    outputs: [data]
  - name: train
    kind: r
    code: steps/train
    script: train.R
    args: [--data, '${{steps.prep.outputs.data}}', --model, '${{outputs.model}}']
    outputs: [model]
schedules:
  - name: nightly
    cron: '30 2 * * *'
"""


@pytest.fixture
def make_repo(tmp_path: Path) -> Callable[..., Path]:
    """Write a repository with one pipeline (YAML text + files); return the pipeline folder."""

    def make(
        yaml_text: str = TWO_STEP_PIPELINE,
        files: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> Path:
        repo = root or tmp_path / "repo"
        (repo / "Pulumi.yaml").parent.mkdir(parents=True, exist_ok=True)
        (repo / "Pulumi.yaml").write_text("name: test\n")
        folder = repo / "pipeline_defs" / "demo"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pipeline.yaml").write_text(textwrap.dedent(yaml_text))
        default_files = {
            "steps/prep/prep.py": "print('prep')\n",
            "steps/prep/util.py": "X = 1\n",
            "steps/train/train.R": "cat('train\\n')\n",
        }
        for rel, text in (files if files is not None else default_files).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        return folder

    return make
