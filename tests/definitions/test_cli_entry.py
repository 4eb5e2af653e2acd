"""The `amlpipe` entry point ends the process without the interpreter's teardown once a command
is done, and only then: the output is complete, the exit code kept, and a command that still has
something running (another non-daemon thread) gets the interpreter's normal exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from infra.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_entry(tmp_path: Path, before: str, *argv: str) -> subprocess.CompletedProcess[str]:
    """`amlpipe <argv>` through `infra.cli.entry` in a fresh interpreter, after `before` ran.
    An atexit handler writes `atexit.txt`: it runs only when the interpreter tears down."""
    atexit_file = str(tmp_path / "atexit.txt")
    code = "\n".join(
        [
            "import atexit, pathlib, sys",
            f"atexit.register(lambda: pathlib.Path({atexit_file!r}).write_text('ran'))",
            before,
            f"sys.argv = ['amlpipe', *{list(argv)!r}]",
            "from infra.cli import entry",
            "entry()",
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60
    )


def test_a_finished_command_ends_at_once_with_all_of_its_output(
    tmp_path: Path, capsys: object
) -> None:
    result = run_entry(tmp_path, "", "schema", "--output", "-")

    assert result.returncode == 0, result.stderr
    assert main(["schema", "--output", "-"]) == 0
    expected = capsys.readouterr().out  # type: ignore[attr-defined]
    assert len(expected) > 10_000  # more than one pipe buffer write: flushed, not cut off
    assert result.stdout == expected
    # The interpreter's teardown (and with it atexit) was skipped.
    assert not (tmp_path / "atexit.txt").exists()


def test_the_exit_code_and_error_output_of_a_failed_command_are_kept(tmp_path: Path) -> None:
    folder = tmp_path / "defs" / "bad"
    folder.mkdir(parents=True)
    (folder / "pipeline.yaml").write_text("name: bad\nsteps: 3\n", encoding="utf-8")

    result = run_entry(tmp_path, "", "validate", str(tmp_path / "defs"))

    assert result.returncode == 1
    assert "pipeline.yaml" in result.stdout + result.stderr
    assert not (tmp_path / "atexit.txt").exists()


def test_a_non_daemon_thread_still_running_gets_the_normal_exit(tmp_path: Path) -> None:
    done = tmp_path / "thread.txt"
    before = (
        "import threading, time\n"
        f"threading.Thread(target=lambda: (time.sleep(0.5), "
        f"pathlib.Path({str(done)!r}).write_text('done'))).start()"
    )

    result = run_entry(tmp_path, before, "schema", "--output", "-")

    assert result.returncode == 0, result.stderr
    assert done.read_text() == "done"  # the interpreter waited for the thread
    assert (tmp_path / "atexit.txt").read_text() == "ran"


def test_usage_errors_exit_through_the_interpreter_with_code_2(tmp_path: Path) -> None:
    result = run_entry(tmp_path, "", "run")

    assert result.returncode == 2
    assert "usage:" in result.stderr
    assert (tmp_path / "atexit.txt").read_text() == "ran"
