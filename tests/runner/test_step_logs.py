"""A step that prints a flood of output: every line reaches its log file in order, the console
shows a bounded number of lines and says where the rest is, and the runner's memory does not grow
with the size of the output."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
LINES = 500_000

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - {name: chatty, kind: python, code: steps, script: chatty.py, args: ['{lines}']}
"""
CHATTY = """\
import sys
for i in range(int(sys.argv[1])):
    print(f"line {i:08d} " + "x" * 84)
"""
# Runs `amlpipe run` as a child and prints the peak resident memory of its process tree (KiB).
MEASURE = """\
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE, text=True)
sys.stderr.write(code.stdout)
print(code.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def expected_log(lines: int) -> bytes:
    """What chatty.py prints."""
    return "".join(f"line {i:08d} " + "x" * 84 + "\n" for i in range(lines)).encode()


def run_chatty(tmp_path: Path, lines: int) -> tuple[str, Path, int]:
    """Run the chatty step under `amlpipe run`; console output, run folder, peak RSS in KiB."""
    defs = tmp_path / f"defs-{lines}"
    (defs / "demo" / "steps").mkdir(parents=True)
    (defs / "demo" / "pipeline.yaml").write_text(PIPELINE.replace("{lines}", str(lines)))
    (defs / "demo" / "steps" / "chatty.py").write_text(CHATTY)
    run_dir = tmp_path / f"run-{lines}"
    command = [sys.executable, "-m", "infra.cli", "run", "demo", "--defs", str(defs)]
    command += ["--executor", "process", "--run-dir", str(run_dir)]
    measured = subprocess.run(
        [sys.executable, "-c", MEASURE, *command],
        cwd=REPO_ROOT,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    code, peak_kib = measured.stdout.split()
    assert code == "0", measured.stderr
    return measured.stderr, run_dir, int(peak_kib)


def test_a_flood_of_output_is_logged_whole_and_shown_in_part_in_bounded_memory(
    tmp_path: Path, cli: Any
) -> None:
    console, run_dir, peak_flood = run_chatty(tmp_path, LINES)
    log = (run_dir / "logs/chatty.log").read_bytes()
    assert len(log) == LINES * 99
    assert hashlib.sha256(log).digest() == hashlib.sha256(expected_log(LINES)).digest()
    shown = [line for line in console.splitlines() if line.startswith("chatty │ line ")]
    assert 0 < len(shown) < LINES // 10
    assert shown[0] == "chatty │ line 00000000 " + "x" * 84  # the first lines are shown, in order
    hidden = sum(
        int(line.split("… ")[1].split(" more lines")[0].replace(",", ""))
        for line in console.splitlines()
        if "more lines only in" in line
    )
    assert len(shown) + hidden == LINES  # every line is either shown or counted
    assert str(run_dir / "logs/chatty.log") in console

    _, _, peak_quiet = run_chatty(tmp_path, 10)
    # 50 MB of output cost the runner (and the step) less than 30 MB more than 10 lines did.
    assert peak_flood - peak_quiet < 30 * 1024, (peak_flood, peak_quiet)


def test_a_line_without_end_is_logged_whole_and_cut_on_the_console(
    make_pipeline: Any, tmp_path: Path, cli: Any
) -> None:
    defs = make_pipeline(
        """\
        name: demo
        experiment: demo
        compute: cpu-cluster
        steps:
          - {name: long, kind: python, code: steps, script: long.py}
        """,
        {"steps/long.py": "import sys\nsys.stdout.write('y' * 3_000_000)\n"},
    )
    run_dir = tmp_path / "run"
    result = cli("run", "demo", "--defs", defs, "--executor", "process", "--run-dir", run_dir)
    assert result.code == 0, result.output
    assert (run_dir / "logs/long.log").read_text() == "y" * 3_000_000
    assert "more characters)" in result.stdout
    assert len(result.stdout) < 100_000
