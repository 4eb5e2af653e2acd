"""Program evaluation of a v2 stack next to a v1 stack, side by side in one run.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/v2_program_eval.py [--repeat N]
[--v1 dev] [--v2 v2] [--modules]`.

Each run is a fresh interpreter running the real program (`__main__.py`) under the recording
mocks of tests/program/mock_program.py for a stack file, the two stacks interleaved N times;
medians of wall time, CPU time (user + system, the least sensitive to other load on shared
machines), the in-process evaluation time the harness reports, and the resources registered.
The issue's bound: v2 within 1.5x of v1. `--modules` also lists the modules one stack imports
and the other does not (the program must not load azure-ai-ml for either).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"


def _run(stack: str, *flags: str) -> tuple[float, float, dict, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *flags, str(HARNESS), str(REPO_ROOT / f"Pulumi.{stack}.yaml")],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, json.loads(done.stdout), done.stderr


def _modules(stack: str) -> set[str]:
    # -X importtime lines: "import time: self | cumulative | <indent>module".
    *_, stderr = _run(stack, "-X", "importtime")
    return {
        line.rsplit("|", 1)[1].strip()
        for line in stderr.splitlines()
        if line.startswith("import time:") and "|" in line and "cumulative" not in line
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--v1", default="dev", help="a v1 stack file Pulumi.<stack>.yaml")
    parser.add_argument("--v2", default="v2", help="a v2 stack file Pulumi.<stack>.yaml")
    parser.add_argument("--modules", action="store_true")
    args = parser.parse_args()
    stacks = {"v1": args.v1, "v2": args.v2}
    samples: dict[str, list[tuple[float, float, float, int]]] = {k: [] for k in stacks}
    for _ in range(args.repeat):
        for label, stack in stacks.items():
            wall, cpu, record, _ = _run(stack)
            samples[label].append((wall, cpu, record["seconds"], len(record["registrations"])))

    def median(label: str, index: int) -> float:
        return statistics.median(s[index] for s in samples[label])

    print(f"{args.repeat} interleaved runs each, medians")
    print(f"{'':<24} {'res.':>5} {'wall s':>7} {'cpu s':>6} {'eval s':>7}")
    for label, stack in stacks.items():
        print(
            f"{label + ' (Pulumi.' + stack + '.yaml)':<24} {median(label, 3):>5.0f} "
            f"{median(label, 0):>7.2f} {median(label, 1):>6.2f} {median(label, 2):>7.2f}"
        )
    ratios = [median("v2", i) / median("v1", i) for i in range(3)]
    print(f"{'v2 / v1':<24} {'':>5} {ratios[0]:>6.2f}x {ratios[1]:>5.2f}x {ratios[2]:>6.2f}x")
    if args.modules:
        one, two = _modules(args.v1), _modules(args.v2)
        print(f"modules only v2 imports: {sorted(two - one) or 'none'}")
        print(f"modules only v1 imports: {sorted(one - two) or 'none'}")
        heavy = sorted(m for m in one | two if m.startswith(("azure.ai.ml", "azure.storage")))
        print(f"azure-ai-ml / azure-storage modules imported: {heavy or 'none'}")


if __name__ == "__main__":
    main()
