"""Runner overhead: `amlpipe run` of a one-step no-op pipeline vs a bare `docker run --rm` of the
same command in the same image, and a bare `python -c pass`. Prints medians of interleaved runs
(wall and CPU seconds); asserts nothing.

Usage: .venv/bin/python bench/runner_overhead.py [--repeat 5] [--image REF] [--baseline DIR]

The runner's own overhead is `amlpipe run` minus `docker run --rm` (the container's life, which
both pay) minus `python -c pass` (the interpreter the CLI starts in): loading and validating the
definitions, the docker SDK, the engine round trips, the run folder, logs and summary. CPU is
user + system time of the child (for docker, of its CLI only: the engine's work is not counted).
Bytecode is cached as an installed package has it. The order of the variants is shuffled
in every round. `--baseline DIR` adds `amlpipe run` from
another checkout (e.g. the main branch before a change), interleaved with the rest.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of a command that must succeed."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    assert child.stderr is not None
    errors = child.stderr.read().decode(errors="replace")
    child.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{errors}")
    return wall, usage.ru_utime + usage.ru_stime


def default_image() -> str:
    """The image built from docker/ (as `amlpipe run` picks it)."""
    import docker
    from infra.runner.docker_engine import default_image as pick

    return pick(docker.from_env(), REPO_ROOT / "docker")


def main() -> None:
    """Write the no-op pipeline, then alternate every variant `--repeat` times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--image", help="training image (default: built from docker/)")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    image = args.image or default_image()
    with tempfile.TemporaryDirectory() as tmp:
        defs = Path(tmp) / "defs"
        (defs / "noop" / "code").mkdir(parents=True)
        (defs / "noop" / "pipeline.yaml").write_text(PIPELINE)
        base_env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        checkouts = {"amlpipe run": REPO_ROOT}
        if args.baseline:
            checkouts["amlpipe run (baseline)"] = args.baseline.resolve()
        samples: dict[str, list[tuple[float, float]]] = {}
        for index in range(args.repeat + 1):
            runs: dict[str, tuple[list[str], dict[str, str]]] = {
                "python -c pass": ([sys.executable, "-c", "pass"], base_env),
                "docker run --rm": (
                    ["docker", "run", "--rm", "--network", "host", image, *NOOP],
                    base_env,
                ),
            }
            for label, checkout in checkouts.items():
                run_dir = Path(tmp) / f"run-{len(samples)}-{index}-{label[-3:]}"
                runs[label] = (
                    [sys.executable, "-P", "-m", "infra.cli", "run", "noop", "--defs", str(defs),
                     "--image", image, "--run-dir", str(run_dir)],
                    {**base_env, "PYTHONPATH": str(checkout)},
                )  # fmt: skip
            # A different order each round: what ran just before (the engine still tidying up
            # after a removal, caches) does not always favour the same variant.
            order = list(runs.items())
            random.Random(index).shuffle(order)
            for label, (command, env) in order:
                sample = timed(command, env)
                if index:  # the first round warms caches (bytecode, page cache, image layers)
                    samples.setdefault(label, []).append(sample)

    def median(label: str, column: int) -> float:
        return statistics.median(s[column] for s in samples[label])

    floor = median("python -c pass", 0) + median("docker run --rm", 0)
    print(f"one-step no-op pipeline, medians of {args.repeat} interleaved runs, image {image}")
    print(f"{'':<24} {'wall s':>7} {'cpu s':>6} {'overhead s':>11}")
    for label in ["python -c pass", "docker run --rm", *checkouts]:
        wall, cpu = median(label, 0), median(label, 1)
        overhead = f"{wall - floor:>+11.3f}" if label.startswith("amlpipe") else ""
        print(f"{label:<24} {wall:>7.3f} {cpu:>6.3f} {overhead}")
    print("overhead = amlpipe run - docker run --rm - python -c pass")


if __name__ == "__main__":
    main()
