"""`amlpipe run` / `amlpipe build` against a real Docker engine, through the real CLI."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from infra.definitions.hashing import pipeline_digest
from infra.definitions.loader import load_definitions

pytestmark = pytest.mark.docker
REPO_ROOT = Path(__file__).resolve().parents[2]


def read_json(path: Path) -> Any:
    """Parse a JSON file."""
    return json.loads(path.read_text(encoding="utf-8"))


STEPS_PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - name: boom
    kind: python
    code: steps
    script: boom.py
  - name: after_boom
    kind: python
    code: steps
    script: slow.py
    args: [--seconds, 0, --out, '${{{{outputs.out}}}}']
    outputs: [out]
    after: [boom]
  - name: slow
    kind: python
    code: steps
    script: slow.py
    args: [--seconds, {slow_seconds}, --out, '${{{{outputs.out}}}}']
    outputs: [out]
"""
STEP_FILES = {
    "steps/boom.py": """\
        import sys
        for i in range(1, 31):
            print(f"progress line {i:02d}")
        print("about to fail", file=sys.stderr)
        sys.exit(3)
    """,
    "steps/slow.py": """\
        import argparse, pathlib, time
        parser = argparse.ArgumentParser()
        parser.add_argument("--seconds", type=float)
        parser.add_argument("--out", type=pathlib.Path)
        args = parser.parse_args()
        print("working", flush=True)
        time.sleep(args.seconds)
        (args.out / "done.txt").write_text("done")
        print("finished")
    """,
}


def test_build_skips_an_existing_tag_and_prints_the_same_reference(
    cli: Any, base_image: str, training_image: str
) -> None:
    again = cli("build", "--build-arg", f"BASE_IMAGE={base_image}")
    assert again.code == 0, again.output
    assert again.stdout.strip() == training_image
    assert "up to date, not rebuilt" in again.stderr
    assert training_image.startswith("azureml-pipelines/training:ctx-")


def test_churn_sample_trains_a_gbm_and_writes_sane_metrics(
    cli: Any, training_image: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = cli(
        "run",
        "churn-train",
        "--image",
        training_image,
        "--run-dir",
        run_dir,
        "--param",
        "rows=1200",
    )
    assert result.code == 0, result.output
    assert (run_dir / "outputs/prep/data/train.csv").is_file()
    assert (run_dir / "outputs/train/model/model.rds").stat().st_size > 1000
    metrics = read_json(run_dir / "outputs/evaluate/metrics/metrics.json")
    assert metrics["rows"] == 300
    assert 0.7 <= metrics["auc"] <= 1.0
    assert 0.6 <= metrics["accuracy"] <= 1.0
    assert 0.0 < metrics["log_loss"] < 0.69  # better than a coin flip
    # Log lines are streamed with a step prefix and kept per step.
    assert "train    │ saved model" in result.stdout
    assert "saved model and 300 test scores" in (run_dir / "logs/train.log").read_text()
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "succeeded"
    assert summary["parameters"]["rows"] == 1200 and summary["parameters"]["seed"] == 42
    assert {name: s["exit_code"] for name, s in summary["steps"].items()} == {
        "prep": 0,
        "train": 0,
        "evaluate": 0,
    }
    loaded = load_definitions([REPO_ROOT / "pipeline_defs"]).by_name("churn-train")
    assert summary["pipeline_hash"] == pipeline_digest(loaded, {"training": training_image}).digest


def test_sales_sample_runs_branches_in_parallel_and_the_join_sees_both(
    cli: Any, training_image: str, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    result = cli(
        "run", "sales-report", "--image", training_image, "--run-dir", run_dir,
        "--jobs", "2", "--param", "simulate_work_seconds=1.5", "--param", "currency=USD",
    )  # fmt: skip
    assert result.code == 0, result.output
    report = read_json(run_dir / "outputs/report/report/report.json")
    assert report["branches"] == ["by_product", "by_region"]
    assert report["totals_agree"] is True
    assert report["currency"] == "USD"
    assert report["transactions"] == 5000
    steps = read_json(run_dir / "summary.json")["steps"]
    region, product = steps["by_region"], steps["by_product"]
    # With --jobs 2 the branches overlap in time: each started before the other ended.
    for one, other in [(region, product), (product, region)]:
        start = datetime.fromisoformat(one["started_at"]).timestamp()
        other_end = (
            datetime.fromisoformat(other["started_at"]).timestamp() + other["duration_seconds"]
        )
        assert start < other_end
    assert datetime.fromisoformat(steps["report"]["started_at"]) > datetime.fromisoformat(
        region["started_at"]
    )


def test_a_failing_step_stops_its_dependents_and_lets_running_steps_finish(
    cli: Any, training_image: str, tmp_path: Path, make_pipeline: Callable[..., Path]
) -> None:
    defs = make_pipeline(STEPS_PIPELINE.format(slow_seconds=2), STEP_FILES)
    run_dir = tmp_path / "run"
    result = cli(
        "run",
        "demo",
        "--defs",
        defs,
        "--image",
        training_image,
        "--run-dir",
        run_dir,
        "--jobs",
        "2",
    )
    assert result.code == 1, result.output
    assert "step boom failed: exit code 3" in result.stdout
    # The report ends with the failing step's last log lines (a tail, not the whole log).
    tail = result.stdout.split("last 20 log lines of boom:")[1]
    assert "about to fail" in tail and "progress line 30" in tail
    assert "progress line 10" not in tail
    summary = read_json(run_dir / "summary.json")
    statuses = {name: s["status"] for name, s in summary["steps"].items()}
    assert statuses == {"boom": "failed", "after_boom": "skipped", "slow": "succeeded"}
    assert summary["status"] == "failed" and summary["failed_steps"] == ["boom"]
    assert summary["steps"]["boom"]["exit_code"] == 3
    assert (run_dir / "outputs/slow/out/done.txt").is_file()


def test_fail_fast_cancels_running_steps_and_removes_their_containers(
    cli: Any,
    training_image: str,
    tmp_path: Path,
    make_pipeline: Callable[..., Path],
    run_containers: Callable[[Path], list[Any]],
) -> None:
    defs = make_pipeline(STEPS_PIPELINE.format(slow_seconds=120), STEP_FILES)
    run_dir = tmp_path / "run"
    result = cli(
        "run", "demo", "--defs", defs, "--image", training_image, "--run-dir", run_dir,
        "--jobs", "2", "--fail-fast", timeout=60,
    )  # fmt: skip
    assert result.code == 1, result.output
    steps = read_json(run_dir / "summary.json")["steps"]
    assert steps["slow"]["status"] == "cancelled"
    assert "--fail-fast" in steps["slow"]["message"]
    assert not (run_dir / "outputs/slow/out/done.txt").exists()
    assert run_containers(run_dir) == []


def test_a_step_whose_input_is_empty_fails_without_starting(
    cli: Any,
    training_image: str,
    tmp_path: Path,
    make_pipeline: Callable[..., Path],
    run_containers: Callable[[Path], list[Any]],
) -> None:
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - name: produce
            kind: python
            code: steps
            script: nothing.py
            args: ['${{outputs.data}}']
            outputs: [data]
          - name: consume
            kind: python
            code: steps
            script: nothing.py
            args: ['${{steps.produce.outputs.data}}']
        """,
        {"steps/nothing.py": "print('wrote nothing')\n"},
    )
    run_dir = tmp_path / "run"
    result = cli("run", "demo", "--defs", defs, "--image", training_image, "--run-dir", run_dir)
    assert result.code == 1, result.output
    consume = read_json(run_dir / "summary.json")["steps"]["consume"]
    assert consume["status"] == "failed"
    assert consume["exit_code"] is None
    assert "input steps.produce.outputs.data is empty" in consume["message"]
    assert "input steps.produce.outputs.data is empty" in result.stdout
    assert not (run_dir / "logs/consume.log").exists()
    assert run_containers(run_dir) == []


def test_ctrl_c_removes_the_containers_of_the_run(
    training_image: str,
    tmp_path: Path,
    make_pipeline: Callable[..., Path],
    run_containers: Callable[[Path], list[Any]],
) -> None:
    slow = "kind: python, code: steps, script: slow.py, outputs: [out]"
    slow_args = "args: [--seconds, 120, --out, '${{outputs.out}}']"
    defs = make_pipeline(
        f"""\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - {{name: a, {slow}, {slow_args}}}
          - {{name: b, {slow}, {slow_args}}}
          - {{name: c, {slow}, {slow_args}, after: [a]}}
        """,
        STEP_FILES,
    )
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
    command += ["--image", training_image, "--run-dir", str(run_dir), "--jobs", "2"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while len([c for c in run_containers(run_dir) if c.status == "running"]) < 2:
            assert time.monotonic() < deadline, "the two steps never started"
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert run_containers(run_dir) == []
    summary = read_json(run_dir / "summary.json")
    assert summary["status"] == "cancelled"
    assert {s["status"] for s in summary["steps"].values()} == {"cancelled", "skipped"}


def test_a_command_step_runs_in_its_read_only_code_folder_with_resolved_arguments(
    cli: Any, training_image: str, tmp_path: Path, make_pipeline: Callable[..., Path]
) -> None:
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        parameters:
          greeting: {type: string, default: hello}
          loud: {type: bool, default: false}
        steps:
          - name: probe
            kind: command
            code: code
            command: [sh, probe.sh]
            args: ['${{parameters.greeting}}', '${{parameters.loud}}', '${{outputs.out}}']
            outputs: [out]
        """,
        {
            "code/probe.sh": """\
                out="$3"
                { pwd; ls; echo "$1 $2"; id -u; } > "$out/probe.txt"
                touch written-into-code 2>/dev/null && echo "code writable" >> "$out/probe.txt"
                true
            """
        },
    )
    run_dir = tmp_path / "run"
    result = cli(
        "run", "demo", "--defs", defs, "--image", training_image, "--run-dir", run_dir,
        "--param", "loud=true",
    )  # fmt: skip
    assert result.code == 0, result.output
    lines = (run_dir / "outputs/probe/out/probe.txt").read_text().splitlines()
    assert lines == ["/amlpipe/code", "probe.sh", "hello True", str(os.getuid())]
    assert not (defs / "demo/code/written-into-code").exists()


def test_without_image_option_the_image_built_from_docker_dir_is_used(
    cli: Any, training_image: str, tmp_path: Path
) -> None:
    # The session image was built with a BASE_IMAGE build argument, so its tag is not the
    # default-argument tag: the runner finds it by the docker/ content label.
    run_dir = tmp_path / "run"
    result = cli("run", "sales-report", "--run-dir", run_dir, "--param", "transactions=50")
    assert result.code == 0, result.output
    assert read_json(run_dir / "summary.json")["image"] == training_image


def test_a_missing_image_says_how_to_get_one(cli: Any, tmp_path: Path, docker_client: Any) -> None:
    result = cli(
        "run", "sales-report", "--image", "azureml-pipelines/training:ctx-does-not-exist",
        "--run-dir", tmp_path / "run",
    )  # fmt: skip
    assert result.code == 2
    assert "image 'azureml-pipelines/training:ctx-does-not-exist' not found" in result.stderr
    assert "amlpipe build" in result.stderr and "--executor process" in result.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind by a run that cannot start


def test_docker_and_process_executors_produce_the_same_report(
    cli: Any, training_image: str, tmp_path: Path
) -> None:
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript not on this host (`.ci/docker.sh start` installs r-base-core)")
    reports = {}
    for executor in ("docker", "process"):
        run_dir = tmp_path / executor
        result = cli(
            "run", "sales-report", "--executor", executor, "--image", training_image,
            "--run-dir", run_dir, "--param", "transactions=800",
        )  # fmt: skip
        assert result.code == 0, result.output
        reports[executor] = (run_dir / "outputs/report/report/report.json").read_text()
    assert reports["docker"] == reports["process"]


def test_sigterm_stops_a_container_step_that_ignores_it_after_the_grace_period(
    training_image: str,
    tmp_path: Path,
    make_pipeline: Callable[..., Path],
    run_containers: Callable[[Path], list[Any]],
) -> None:
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - {name: stubborn, kind: python, code: steps, script: stubborn.py}
        """,
        {
            "steps/stubborn.py": """\
                import signal, time
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                print("ready", flush=True)
                time.sleep(600)
            """
        },
    )
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
    command += ["--image", training_image, "--run-dir", str(run_dir), "--stop-grace", "2"]
    process = subprocess.Popen(
        command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        deadline = time.monotonic() + 60
        log = run_dir / "logs/stubborn.log"
        while not (log.is_file() and "ready" in log.read_text()):
            assert time.monotonic() < deadline, "the step never started"
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, output
    assert "SIGKILL in 2s" in output and "killing 1 step(s)" in output
    assert run_containers(run_dir) == []
    stubborn = read_json(run_dir / "summary.json")["steps"]["stubborn"]
    assert stubborn["status"] == "cancelled" and stubborn["message"] == "cancelled by SIGTERM"


def test_the_image_has_what_azure_ml_v1_runs_inside_a_job(
    docker_client: Any, training_image: str
) -> None:
    # With user-managed dependencies the job's Python is the image's `python`: the run context,
    # dataset mounts/uploads (rslex, FUSE) and the job's context managers must import there.
    script = (
        "import azureml.core, azureml.dataprep.rslex, azureml.data.context_managers, fuse\n"
        "from azureml.core import Run\n"
        "print(type(Run.get_context()).__name__)\n"
    )
    shell = f"python -c '{script}' && command -v fusermount && pip check && pip freeze --local"
    output = docker_client.containers.run(
        training_image, ["/bin/sh", "-c", shell], network_mode="host", remove=True
    ).decode()
    lines = output.splitlines()
    assert lines[0] == "_OfflineRun"  # azureml's run context outside a job
    assert lines[1] == "/usr/bin/fusermount"
    assert lines[2] == "No broken requirements found."
    frozen = {
        re.sub(r"[-_.]+", "-", name).lower(): version
        for name, version in (line.split("==") for line in lines[3:])
    }
    pinned: dict[str, str] = {}
    for line in (REPO_ROOT / "docker/constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pinned[re.sub(r"[-_.]+", "-", name).lower()] = version
    pinned.pop("pip")  # pip freeze leaves pip out
    assert frozen == pinned
