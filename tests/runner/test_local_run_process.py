"""`amlpipe run` without Docker (`--executor process`), parameter checking, and the errors that
stop a run before any step starts. No Docker engine needed."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from infra.definitions.loader import load_definitions
from infra.runner.errors import RunnerError
from infra.runner.params import resolve_parameters
from infra.runner.plan import RunLayout, plan_step

REPO_ROOT = Path(__file__).resolve().parents[2]
needs_r = pytest.mark.skipif(
    shutil.which("Rscript") is None,
    reason="Rscript not on this host (`.ci/docker.sh start` installs r-base-core and r-cran-*)",
)


def _churn() -> Any:
    return load_definitions([REPO_ROOT / "pipeline_defs"]).by_name("churn-train")


@needs_r
def test_process_executor_runs_the_churn_sample_with_local_interpreters(
    cli: Any, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = cli(
        "run", "churn-train", "--executor", "process", "--run-dir", run_dir,
        "--param", "rows=800", "--param", "n_trees=50",
    )  # fmt: skip
    assert result.code == 0, result.output
    assert (run_dir / "outputs/train/model/model.rds").is_file()
    metrics = json.loads((run_dir / "outputs/evaluate/metrics/metrics.json").read_text())
    assert 0.7 <= metrics["auc"] <= 1.0
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["executor"] == "process" and summary["image"] is None
    assert summary["parameters"]["n_trees"] == 50


@needs_r
def test_quality_gate_failure_reports_the_step_exit_code_and_last_lines(
    cli: Any, tmp_path: Path
) -> None:
    result = cli(
        "run", "churn-train", "--executor", "process", "--run-dir", tmp_path / "run",
        "--param", "rows=400", "--param", "n_trees=20", "--param", "min_auc=0.999",
    )  # fmt: skip
    assert result.code == 1, result.output
    assert "step evaluate failed: exit code 1" in result.stdout
    assert "is below --min-auc 0.999" in result.stdout.split("last ")[-1]


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("rows=many", "--param rows=many: 'many' is not a valid int"),
        ("rows=2.5", "'2.5' is not a valid int"),
        ("learning_rate=fast", "'fast' is not a valid float"),
        ("colour=red", "unknown parameter 'colour'"),
        ("rows", "expected KEY=VALUE"),
    ],
)
def test_bad_param_is_rejected_before_any_step_runs(
    cli: Any, tmp_path: Path, param: str, message: str
) -> None:
    run_dir = tmp_path / "run"
    result = cli(
        "run", "churn-train", "--executor", "process", "--run-dir", run_dir, "--param", param
    )
    assert result.code == 2
    assert message in result.stderr
    assert not run_dir.exists()


def test_param_values_get_their_declared_types() -> None:
    spec = _churn().spec
    values = resolve_parameters(spec.parameters, ["rows=300", "learning_rate=0.05"])
    assert values["rows"] == 300 and isinstance(values["rows"], int)
    assert values["learning_rate"] == 0.05
    assert values["seed"] == 42  # default kept
    with pytest.raises(RunnerError, match="given more than once"):
        resolve_parameters(spec.parameters, ["rows=1", "rows=2"])


def test_missing_interpreter_is_a_clear_error(cli: Any, tmp_path: Path) -> None:
    result = cli(
        "run", "churn-train", "--executor", "process", "--run-dir", tmp_path / "run",
        env={"AMLPIPE_RSCRIPT": "/nonexistent/Rscript"},
    )  # fmt: skip
    assert result.code == 2
    assert "Rscript (R) not found: /nonexistent/Rscript is not on PATH" in result.stderr
    assert "--executor docker" in result.stderr


def test_unreachable_docker_engine_says_what_to_do(cli: Any, tmp_path: Path) -> None:
    result = cli(
        "run", "churn-train", "--run-dir", tmp_path / "run",
        env={"DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock"},
    )  # fmt: skip
    assert result.code == 2
    assert "cannot reach the Docker engine" in result.stderr
    assert "--executor process" in result.stderr


def test_unknown_pipeline_lists_the_known_ones(cli: Any) -> None:
    result = cli("run", "no-such-pipeline", "--executor", "process")
    assert result.code == 2
    assert "no pipeline named 'no-such-pipeline'" in result.stderr
    assert "churn-train" in result.stderr


def test_arguments_use_the_shared_resolver_with_container_or_host_paths(tmp_path: Path) -> None:
    loaded = _churn()
    layout = RunLayout(tmp_path)
    params = resolve_parameters(loaded.spec.parameters, ["n_trees=7"])
    train = loaded.spec.step("train")
    interpreters = {"python": "python", "r": "Rscript"}
    in_container = plan_step(
        loaded, train, layout, params, in_container=True, interpreters=interpreters
    )
    assert in_container.argv == [
        "Rscript", "train.R",
        "--data", "/amlpipe/inputs/prep/data",
        "--n-trees", "7", "--learning-rate", "0.1", "--seed", "42",
        "--out", "/amlpipe/outputs/model",
    ]  # fmt: skip
    assert in_container.workdir == "/amlpipe/code"
    mounts = {m.target: (m.host, m.read_only) for m in in_container.mounts}
    assert mounts["/amlpipe/inputs/prep/data"] == (
        layout.output_dir("prep", "data").resolve(),
        True,
    )
    assert mounts["/amlpipe/outputs/model"] == (
        layout.output_dir("train", "model").resolve(),
        False,
    )
    assert mounts["/amlpipe/code"] == (loaded.folder / "steps/train", True)

    on_host = plan_step(
        loaded, train, layout, params, in_container=False, interpreters=interpreters
    )
    assert on_host.argv[3] == str(layout.output_dir("prep", "data").resolve())
    assert on_host.argv[-1] == str(layout.output_dir("train", "model").resolve())
    assert on_host.workdir == str(loaded.folder / "steps/train")


def test_ctrl_c_stops_the_step_processes_of_a_process_run(
    make_pipeline: Any, tmp_path: Path
) -> None:
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - name: sleeper
            kind: python
            code: steps
            script: sleeper.py
            args: ['${{outputs.out}}']
            outputs: [out]
        """,
        {
            "steps/sleeper.py": """\
                import os, pathlib, sys, time
                (pathlib.Path(sys.argv[1]) / "pid").write_text(str(os.getpid()))
                time.sleep(120)
            """
        },
    )
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
    command += ["--executor", "process", "--run-dir", str(run_dir)]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    pid_file = run_dir / "outputs/sleeper/out/pid"
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.is_file() and pid_file.read_text()):
            assert time.monotonic() < deadline, "the step never started"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "cancelled"
    assert summary["steps"]["sleeper"]["status"] == "cancelled"
