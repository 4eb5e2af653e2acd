"""A step that prints a flood of output (default 2 million lines, 200 MB): the step on its own vs
the same step under `amlpipe run --executor process` (and, with --docker, `docker run` vs
`amlpipe run` in the training image). Prints seconds, ratios and the runner's peak memory,
measured side by side in one run; asserts nothing.

Usage: .venv/bin/python bench/step_logs.py [--lines 2000000] [--repeat 1] [--docker] [--image REF]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
STEP = """\
import sys
for i in range(int(sys.argv[1])):
    print(f"line {i:08d} " + "x" * 85)
"""
PIPELINE = """\
name: chatty
experiment: chatty
compute: cpu-cluster
steps:
  - {{name: chatty, kind: python, code: steps, script: chatty.py, args: ['{lines}']}}
"""
# Peak RSS (KiB) of a command's process tree, printed by a fresh interpreter that only waits.
MEASURE = """\
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def timed(command: list[str], stdout_file: Path | None = None, env: dict[str, str] | None = None,
          ) -> tuple[float, int]:  # fmt: skip
    """Wall seconds and peak RSS (MiB) of a command that must succeed."""
    start = time.perf_counter()
    if stdout_file is not None:
        # The step on its own: output to a file, as a job's stdout would be.
        with stdout_file.open("wb") as out:
            subprocess.run(command, check=True, stdout=out, env=env)
        return time.perf_counter() - start, 0
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, *command], check=True, capture_output=True, text=True,
        env=env,
    )  # fmt: skip
    return time.perf_counter() - start, int(done.stdout) // 1024


def main() -> None:
    """Alternate the variants `--repeat` times; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--docker", action="store_true", help="also compare in the training image")
    parser.add_argument("--image", help="training image (default: built from docker/)")
    args = parser.parse_args()
    image = None
    if args.docker:
        import docker
        from infra.runner.docker_engine import default_image

        image = args.image or default_image(docker.from_env(), REPO_ROOT / "docker")
    results: dict[str, list[float]] = {}
    peaks: dict[str, int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        defs = Path(tmp) / "defs"
        (defs / "chatty" / "steps").mkdir(parents=True)
        (defs / "chatty" / "pipeline.yaml").write_text(PIPELINE.format(lines=args.lines))
        script = defs / "chatty" / "steps" / "chatty.py"
        script.write_text(STEP)
        unbuffered = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out = Path(tmp) / "alone.log"
        for index in range(args.repeat):
            variants: dict[str, tuple[list[str], Path | None, dict[str, str] | None]] = {
                "step alone, stdout to a file": ([sys.executable, str(script), str(args.lines)],
                                                 out, None),
                "step alone, unbuffered (as amlpipe runs it)": (
                    [sys.executable, str(script), str(args.lines)], out, unbuffered),
                "amlpipe run --executor process": (
                    [sys.executable, "-m", "infra.cli", "run", "chatty", "--defs", str(defs),
                     "--executor", "process", "--run-dir", f"{tmp}/process-{index}"], None, None),
            }  # fmt: skip
            if image:
                mount = f"{script.parent}:/steps:ro"
                variants["docker run, stdout to a file"] = (
                    ["docker", "run", "--rm", "--network", "host", "-v", mount, image,
                     "python", "/steps/chatty.py", str(args.lines)], out, None)  # fmt: skip
                run_dir = f"{tmp}/docker-{index}"
                variants["amlpipe run (docker)"] = (
                    [sys.executable, "-m", "infra.cli", "run", "chatty", "--defs", str(defs),
                     "--image", image, "--run-dir", run_dir], None, None)  # fmt: skip
            for name, (command, stdout_file, env) in variants.items():
                seconds, peak = timed(command, stdout_file, env)
                results.setdefault(name, []).append(seconds)
                if peak:
                    peaks[name] = max(peaks.get(name, 0), peak)
    size = args.lines * 100 / 1e6
    print(f"a step printing {args.lines:,} lines ({size:.0f} MB), median of {args.repeat}:")
    medians = {name: statistics.median(times) for name, times in results.items()}
    alone = medians["step alone, stdout to a file"]
    for name, seconds in medians.items():
        peak = f"  peak RSS {peaks[name]} MiB" if name in peaks else ""
        print(f"  {name:<45} {seconds:6.2f} s  {seconds / alone:5.2f}x{peak}")
    if image:
        in_docker = medians["docker run, stdout to a file"]
        ratio = medians["amlpipe run (docker)"] / in_docker
        print(f"  amlpipe run (docker) / docker run: {ratio:.2f}x")
    print(f"  (this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB)")


if __name__ == "__main__":
    main()
