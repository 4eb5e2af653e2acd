"""Start-up cost of `amlpipe` subcommands next to a bare `python -c pass`, in one run.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/cli_startup.py [--repeat N]`.

Each command is a fresh interpreter of this venv (what a user or a pre-commit hook pays), run
`--repeat` times interleaved with the others so drift on a shared machine hits all alike, after
one unrecorded warm-up round (bytecode, page cache). Bytecode is cached as an installed package
has it, even when PYTHONDONTWRITEBYTECODE is set (in a temporary PYTHONPYCACHEPREFIX, so the
checkout stays clean). Medians are shown with the difference to the floor (`python -c pass`):
that difference is the command's own start-up plus its work on the repository's sample
definitions. CPU seconds (user + system of the child) are shown too: on a loaded machine they
move less than wall time.

`run (process)` is `amlpipe run` of a one-step pipeline whose step is `python3 -c pass`, run with
local interpreters (this venv's first on PATH, so the step is a real interpreter, not a version
manager's shim); its floor is the bare interpreter plus that step alone, measured the same way,
so its difference is the runner's own overhead per run (loading, planning, run folder, logs,
summary). The Docker executor's overhead is bench/runner_overhead.py's.

`--baseline DIR` adds every `amlpipe` command run from another checkout (e.g. main before a
change), interleaved with the rest, so before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP_PIPELINE = """\
name: noop
experiment: noop
compute: cpu-cluster
steps:
  - name: noop
    kind: command
    code: code
    command: [python3, -c, pass]
"""


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one child that must succeed."""
    start = time.perf_counter()
    child = subprocess.Popen(
        argv, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    assert child.stderr is not None
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{errors}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()

    # The checkout this script belongs to comes first on the path (as in the tests).
    py = sys.executable
    # -P: the checkout comes from PYTHONPATH only (not the working directory, which -m would
    # put first), so a --baseline checkout really runs its own code.
    cli = [py, "-P", "-m", "infra.cli"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache"),
            "PATH": os.pathsep.join([str(Path(py).parent), os.environ.get("PATH", "")]),
        }
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        defs = Path(tmp) / "defs"
        (defs / "noop" / "code").mkdir(parents=True)
        (defs / "noop" / "pipeline.yaml").write_text(NOOP_PIPELINE, encoding="utf-8")
        run_dir = Path(tmp) / "runs"
        # Label -> (argv, labels whose medians add up to its floor).
        floor = ("python -c pass",)
        commands: dict[str, tuple[list[str], tuple[str, ...]]] = {
            "python -c pass": ([py, "-c", "pass"], floor),
            "python3 -c pass (the step alone)": (["python3", "-c", "pass"], floor),
            "amlpipe --help": ([*cli, "--help"], floor),
            "amlpipe validate": ([*cli, "validate"], floor),
            # The stack's settings, then the program's pre-flight checks (v2: its planning rules).
            "amlpipe validate --stack dev": ([*cli, "validate", "--stack", "dev"], floor),
            "amlpipe validate --stack v2": ([*cli, "validate", "--stack", "v2"], floor),
            "amlpipe graph churn-train": ([*cli, "graph", "churn-train"], floor),
            "amlpipe hash churn-train": ([*cli, "hash", "churn-train"], floor),
            "amlpipe hash churn-train --json": ([*cli, "hash", "churn-train", "--json"], floor),
            "amlpipe run noop --executor process": (
                [*cli, "run", "noop", "--defs", str(defs), "--executor", "process",
                 "--run-dir", str(run_dir)],
                ("python -c pass", "python3 -c pass (the step alone)"),
            ),
        }  # fmt: skip
        envs = {label: env for label in commands}
        if args.baseline:
            baseline_env = {**env, "PYTHONPATH": str(args.baseline.resolve())}
            for label, command in list(commands.items()):
                if label.startswith("amlpipe"):
                    commands[f"{label} (baseline)"] = command
                    envs[f"{label} (baseline)"] = baseline_env
        samples: dict[str, list[tuple[float, float, float]]] = {label: [] for label in commands}
        for round_index in range(args.repeat + 1):
            for label, (argv, _) in commands.items():
                if "run" in argv:
                    subprocess.run(["rm", "-rf", str(run_dir)], check=True)
                sample = run_once(argv, envs[label])
                if round_index:  # round 0 warms caches up
                    samples[label].append(sample)

    def median(label: str, column: int) -> float:
        return statistics.median(sample[column] for sample in samples[label])

    print(f"python {sys.version.split()[0]}, {args.repeat} interleaved runs each, medians")
    print(
        f"{'command':<38} {'wall s':>7} {'floor s':>8} {'above':>7} {'ratio':>6} "
        f"{'cpu s':>6} {'above':>7} {'peak MB':>8}"
    )
    # Each command next to its baseline run.
    order = sorted(commands, key=lambda label: list(commands).index(label.split(" (baseline)")[0]))
    for label in order:
        floors = commands[label][1]
        wall, cpu, peak = median(label, 0), median(label, 1), median(label, 2)
        base = sum(median(f, 0) for f in floors)
        cpu_base = sum(median(f, 1) for f in floors)
        print(
            f"{label:<38} {wall:>7.3f} {base:>8.3f} {wall - base:>+7.3f} {wall / base:>6.2f} "
            f"{cpu:>6.3f} {cpu - cpu_base:>+7.3f} {peak:>8.1f}"
        )


if __name__ == "__main__":
    main()
