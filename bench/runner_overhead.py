"""Runner overhead: `amlpipe run` of a one-step no-op pipeline vs a bare `docker run` of the same
command in the same image. Prints medians and their ratio (interleaved runs); asserts nothing.

Usage: .venv/bin/python bench/runner_overhead.py [--repeat 5] [--image REF]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
from infra.runner.docker_engine import default_image

REPO_ROOT = Path(__file__).resolve().parents[1]
NOOP = ["python", "-c", "pass"]
PIPELINE = """\
name: noop
experiment: noop
compute: cpu-cluster
steps:
  - name: noop
    kind: command
    code: code
    command: [python, -c, pass]
"""


def timed(command: list[str]) -> float:
    """Wall seconds of a command that must succeed."""
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Write the no-op pipeline, then alternate both variants `--repeat` times."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--image", help="training image (default: built from docker/)")
    args = parser.parse_args()
    image = args.image or default_image(docker.from_env(), REPO_ROOT / "docker")
    with tempfile.TemporaryDirectory() as tmp:
        defs = Path(tmp) / "defs"
        (defs / "noop" / "code").mkdir(parents=True)
        (defs / "noop" / "pipeline.yaml").write_text(PIPELINE)
        runner_times: list[float] = []
        docker_times: list[float] = []
        for index in range(args.repeat):
            run_dir = Path(tmp) / f"run{index}"
            runner_times.append(
                timed([sys.executable, "-m", "infra.cli", "run", "noop", "--defs", str(defs),
                       "--image", image, "--run-dir", str(run_dir)])
            )  # fmt: skip
            docker_times.append(timed(["docker", "run", "--rm", "--network", "host", image, *NOOP]))
    r, d = statistics.median(runner_times), statistics.median(docker_times)
    print(f"one-step no-op pipeline, median of {args.repeat}, image {image}:")
    print(f"  amlpipe run (CLI start, load + validate, container, logs, summary): {r:5.2f} s")
    print(f"  docker run --rm (CLI):                                              {d:5.2f} s")
    print(f"  ratio amlpipe/docker: {r / d:.2f}x (overhead {r - d:+.2f} s)")


if __name__ == "__main__":
    main()
