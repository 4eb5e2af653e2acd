"""Parallel branches: wall time of the two-branch sample (sales-report) with --jobs 1 vs --jobs 2,
with no extra work and with `simulate_work_seconds` per branch. Interleaved, medians, no asserts.

Usage: .venv/bin/python bench/parallel.py [--repeat 3] [--executor docker|process] [--image REF]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_seconds(run_dir: Path, jobs: int, work: float, extra: list[str]) -> float:
    """Duration of one run as recorded in its summary.json (excludes CLI start-up)."""
    subprocess.run(
        [sys.executable, "-m", "infra.cli", "run", "sales-report", "--jobs", str(jobs),
         "--run-dir", str(run_dir), "--param", f"simulate_work_seconds={work}", *extra],
        check=True, capture_output=True, cwd=REPO_ROOT,
    )  # fmt: skip
    summary = json.loads((run_dir / "summary.json").read_text())
    return float(summary["duration_seconds"])


def main() -> None:
    """Alternate --jobs 1 and --jobs 2 for each amount of simulated work."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--executor", choices=["docker", "process"], default="docker")
    parser.add_argument("--image")
    parser.add_argument("--work", type=float, nargs="*", default=[0.0, 2.0])
    args = parser.parse_args()
    extra = ["--executor", args.executor] + (["--image", args.image] if args.image else [])
    print(f"sales-report (generate -> by_region || by_product -> report), {args.executor}:")
    with tempfile.TemporaryDirectory() as tmp:
        for work in args.work:
            times: dict[int, list[float]] = {1: [], 2: []}
            for index in range(args.repeat):
                for jobs in (1, 2):
                    run_dir = Path(tmp) / f"w{work}-j{jobs}-{index}"
                    times[jobs].append(run_seconds(run_dir, jobs, work, extra))
            one, two = statistics.median(times[1]), statistics.median(times[2])
            print(
                f"  simulate_work_seconds={work}: --jobs 1 {one:5.2f} s, --jobs 2 {two:5.2f} s, "
                f"speed-up {one / two:.2f}x (median of {args.repeat})"
            )


if __name__ == "__main__":
    main()
