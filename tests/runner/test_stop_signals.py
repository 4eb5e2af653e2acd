"""Stopping `amlpipe run --executor process` with signals: every process of every step ends (the
whole process group, a step ignoring SIGTERM too, after the grace period), a second signal hurries
the clean-up but never skips it, and summary.json records the run as cancelled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - name: stubborn
    kind: python
    code: steps
    script: stubborn.py
    args: ['${{outputs.out}}']
    outputs: [out]
  - name: later
    kind: python
    code: steps
    script: stubborn.py
    args: ['${{outputs.out}}']
    outputs: [out]
    after: [stubborn]
"""
# Ignores SIGTERM and starts a child that ignores it too (SIG_IGN is inherited).
STUBBORN = """\
import os, pathlib, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
(pathlib.Path(sys.argv[1]) / "pids").write_text(f"{os.getpid()} {child.pid}")
print("ready", flush=True)
time.sleep(600)
"""


def ended(pid: int) -> bool:
    """Gone, or a zombie waiting for whoever adopted it (it runs nothing any more)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return True
    return fields[0] in ("Z", "X")


def wait_until(check: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll `check` until true; fail naming `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.fixture
def start_run(make_pipeline: Any, tmp_path: Path) -> Callable[..., tuple[Any, Path, list[int]]]:
    """Start `amlpipe run` of a pipeline whose first step ignores SIGTERM; wait until it runs."""
    defs = make_pipeline(PIPELINE, {"steps/stubborn.py": STUBBORN})
    processes: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[str], Path, list[int]]:
        run_dir = tmp_path / "run"
        command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
        command += ["--executor", "process", "--run-dir", str(run_dir), *extra]
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "COLUMNS": "200"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(process)
        pids_file = run_dir / "outputs/stubborn/out/pids"
        wait_until(lambda: len(pids_file.read_text().split()) == 2 if pids_file.exists() else False,
                   60, "the step never started")  # fmt: skip
        wait_until(lambda: "ready" in (run_dir / "logs/stubborn.log").read_text(), 30, "ready")
        return process, run_dir, [int(p) for p in pids_file.read_text().split()]

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def assert_cancelled(run_dir: Path, pids: list[int], reason: str) -> None:
    """Every process of the step ended; summary.json says cancelled."""
    wait_until(lambda: all(ended(pid) for pid in pids), 10, f"processes {pids} still run")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "cancelled"
    assert summary["steps"]["stubborn"]["status"] == "cancelled"
    assert summary["steps"]["stubborn"]["message"].startswith(f"cancelled by {reason}")
    assert summary["steps"]["later"]["status"] == "skipped"


def test_sigterm_ends_a_step_that_ignores_it_and_its_children_after_the_grace_period(
    start_run: Any,
) -> None:
    process, run_dir, pids = start_run("--stop-grace", "1")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "SIGTERM sent, SIGKILL in 1s" in output
    assert "killing 1 step(s) (SIGKILL)" in output
    assert_cancelled(run_dir, pids, "SIGTERM")


def test_a_second_ctrl_c_kills_at_once_and_still_cleans_up(start_run: Any) -> None:
    # A grace period far longer than the test's patience: only the second signal can end it.
    process, run_dir, pids = start_run("--stop-grace", "3600")
    assert process.stdout is not None
    process.send_signal(signal.SIGINT)
    for line in process.stdout:
        if "SIGTERM sent" in line:
            break
    assert all(not ended(pid) for pid in pids)  # the step ignored SIGTERM
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "killing 1 step(s)" in output
    assert_cancelled(run_dir, pids, "SIGINT")


def test_a_burst_of_signals_never_skips_the_summary(start_run: Any) -> None:
    process, run_dir, pids = start_run("--stop-grace", "3600")
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGINT, signal.SIGTERM):
        process.send_signal(signum)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    # Pending signals arrive lowest number first: whichever came first is named.
    assert_cancelled(run_dir, pids, "SIG")


def test_what_a_finished_step_left_running_is_ended_like_a_container_end(
    make_pipeline: Any, tmp_path: Path, cli: Any
) -> None:
    # The step starts a background process that keeps its output open, then exits: the run must
    # neither hang on it nor leave it running.
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - {name: spawn, kind: command, code: steps, command: [sh, spawn.sh],
             args: ['${{outputs.out}}'], outputs: [out]}
        """,
        {"steps/spawn.sh": 'sleep 600 &\necho $! > "$1/pid"\necho spawned\n'},
    )
    run_dir = tmp_path / "run"
    result = cli("run", "demo", "--defs", defs, "--executor", "process", "--run-dir", run_dir,
                 timeout=120)  # fmt: skip
    assert result.code == 0, result.output
    pid = int((run_dir / "outputs/spawn/out/pid").read_text())
    wait_until(lambda: ended(pid), 10, f"background process {pid} still runs")
    assert (run_dir / "logs/spawn.log").read_text() == "spawned\n"
