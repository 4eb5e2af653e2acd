"""The run folder belongs to one run: two `amlpipe run` into one `--run-dir` started together must
not both run (the second fails before any step starts), whatever the timing."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from infra.definitions.loader import load_definitions
from infra.runner.errors import RunnerError
from infra.runner.run import CLAIM_FILE, RunOptions, claim_run_dir, run_pipeline

REPO_ROOT = Path(__file__).resolve().parents[2]
TRIALS = 20

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - name: record
    kind: python
    code: steps
    script: record.py
    args: ['{starts}', '${{{{outputs.out}}}}']
    outputs: [out]
"""
# Every start of the step appends one line to a file outside the run folder.
RECORD = """\
import os, pathlib, sys
with open(sys.argv[1], "a") as starts:
    starts.write(f"{os.getpid()}\\n")
(pathlib.Path(sys.argv[2]) / "done").write_text("done")
"""


def _defs(tmp_path: Path, starts: Path) -> Path:
    folder = tmp_path / "defs" / "demo"
    (folder / "steps").mkdir(parents=True)
    (folder / "pipeline.yaml").write_text(PIPELINE.format(starts=starts), encoding="utf-8")
    (folder / "steps" / "record.py").write_text(textwrap.dedent(RECORD), encoding="utf-8")
    return folder.parent


def test_two_runs_started_together_into_one_folder_never_both_run(tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"
    loaded = load_definitions([_defs(tmp_path, starts)]).by_name("demo")
    for trial in range(TRIALS):
        run_dir = tmp_path / f"run-{trial}"
        barrier = threading.Barrier(2)
        results: list[Any] = []

        def run(
            run_dir: Path = run_dir,
            barrier: threading.Barrier = barrier,
            results: list[Any] = results,
        ) -> None:
            options = RunOptions(executor="process", run_dir=run_dir, jobs=1)
            console = Console(file=io.StringIO())
            barrier.wait()
            try:
                results.append(run_pipeline(loaded, options, console))
            except RunnerError as exc:
                results.append(exc)

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        errors = [r for r in results if isinstance(r, RunnerError)]
        summaries = [r for r in results if not isinstance(r, RunnerError)]
        assert len(summaries) == 1 and len(errors) == 1, (trial, results)
        assert summaries[0].status == "succeeded"
        assert f"run folder {run_dir}" in errors[0].message
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["run_id"] == summaries[0].run_id
        owner = json.loads((run_dir / CLAIM_FILE).read_text())
        assert owner["run_id"] == summaries[0].run_id
    # One step start per trial: the loser never started its step.
    assert len(starts.read_text().splitlines()) == TRIALS


def test_two_cli_runs_started_together_one_fails_before_its_step(tmp_path: Path) -> None:
    starts = tmp_path / "starts.txt"
    defs = _defs(tmp_path, starts)
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
    command += ["--executor", "process", "--run-dir", str(run_dir)]
    processes = [
        subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "COLUMNS": "400"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outcomes = sorted((p.wait(timeout=120), p.communicate()[1]) for p in processes)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert f"run folder {run_dir}" in outcomes[1][1]
    assert len(starts.read_text().splitlines()) == 1


def test_a_folder_used_before_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(RunnerError, match=r"is not empty \(keep.txt\)"):
        claim_run_dir(used, "r1")
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    claim_run_dir(tmp_path / "fresh", "r2")
    with pytest.raises(RunnerError, match=r"already belongs to run r2 \(pid \d+\)"):
        claim_run_dir(tmp_path / "fresh", "r3")


def test_a_run_folder_below_a_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunnerError, match=r"cannot create run folder .*: Not a directory"):
        claim_run_dir(tmp_path / "file" / "run", "r1")
