"""Cost of evaluating the Pulumi program under mocks, next to the bare import floor.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/program_eval.py [--repeat N]
[--stack dev] [--sizes 1,10,100,500]`.

Each measurement is a fresh interpreter (what `pulumi preview` pays on every run), repeated N
times, medians reported:

- floor: `import pulumi` plus the `pulumi_azure_native` submodules the program imports (read from
  the program's own import statements, so the list stays true), each actually loaded (they are
  lazy modules); also shown with `pulumi_docker_build`, the program's other SDK;
- program: tests/program/mock_program.py running the real program (`__main__.py`) for a stack
  file under the recording mocks (settings, names, context hash of docker/, every resource
  registration); "eval" is the part after the harness's own imports, as timed inside the process.

- the same program with the samples cloned to each of `--sizes` pipelines (code folders copied,
  names made unique, `pipelineDefs` pointed at them through a copy of the stack file), so growth
  with the number of pipelines shows next to the floor.

Wall time, CPU time (user + system) and peak RSS (ru_maxrss) of each child are measured side by
side in one run; the ratios to the floor are the figures to compare, since absolute timings on
shared machines are noisy (CPU time least so when other work competes for the cores).
"""

from __future__ import annotations

import argparse
import ast
import itertools
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PROGRAM_FILES = [
    REPO_ROOT / "infra" / "program.py",
    *(REPO_ROOT / "infra" / "components").glob("*.py"),
]
HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"


@dataclass(frozen=True)
class Sample:
    """One child process: wall seconds, peak RSS in MB, and its stdout."""

    seconds: float
    cpu: float
    """User + system CPU seconds of the child: less sensitive than wall time to other load."""
    peak_mb: float
    stdout: str


def azure_native_submodules() -> list[str]:
    """`pulumi_azure_native` submodules imported by the program and its components."""
    found: set[str] = set()
    for path in PROGRAM_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "pulumi_azure_native":
                found.update(alias.name for alias in node.names)
    return sorted(found)


def run_child(argv: list[str]) -> Sample:
    """Run `argv` to completion; wall time and the child's own peak RSS (os.wait4)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{argv[:2]} failed:\n{err.read().decode(errors='replace')}")
        # Linux reports ru_maxrss in KiB.
        cpu = usage.ru_utime + usage.ru_stime
        return Sample(seconds, cpu, usage.ru_maxrss / 1024, out.read().decode())


def measure(commands: dict[str, list[str]], repeat: int) -> dict[str, list[Sample]]:
    """Samples of each command, interleaved round by round so drift on a shared machine hits all
    of them alike; one unrecorded warm-up round first (bytecode, page cache)."""
    for argv in commands.values():
        run_child(argv)
    samples: dict[str, list[Sample]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, argv in commands.items():
            samples[label].append(run_child(argv))
    return samples


def median(values: list[float]) -> float:
    return statistics.median(values)


def clone_samples(dest: Path, count: int) -> None:
    """`count` pipelines in `dest`: the repository's samples copied round-robin, code included
    (each clone has its own code folders, as separate pipelines do), each renamed uniquely."""
    samples = sorted(p.parent for p in (REPO_ROOT / "pipeline_defs").glob("*/pipeline.yaml"))
    for index in range(count):
        sample = samples[index % len(samples)]
        target = dest / f"{sample.name}-{index:04d}"
        shutil.copytree(sample, target, ignore=shutil.ignore_patterns("__pycache__"))
        definition = target / "pipeline.yaml"
        text = definition.read_text(encoding="utf-8")
        renamed, replaced = re.subn(
            r"^name:\s*(\S+)", rf"name: \g<1>-{index:04d}", text, count=1, flags=re.M
        )
        if not replaced:
            raise SystemExit(f"{definition}: no top-level 'name:' line to rename")
        definition.write_text(renamed, encoding="utf-8")


def stack_file_for(base: Path, defs: Path, folder: Path) -> Path:
    """A copy of stack file `base` (same stack name) whose `pipelineDefs` is `defs`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = base.read_text(encoding="utf-8").rstrip("\n")
    relative = defs.relative_to(REPO_ROOT).as_posix()
    path = folder / base.name
    path.write_text(f"{text}\n  azureml-pipelines:pipelineDefs: {relative}\n", encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stack", default="dev", help="stack file Pulumi.<stack>.yaml to run")
    parser.add_argument(
        "--sizes", default="1,10,100,500", help="pipeline counts to clone the samples to"
    )
    args = parser.parse_args()
    sizes = [int(n) for n in args.sizes.split(",")]

    modules = azure_native_submodules()
    # azure-native submodules load lazily, on first attribute access: touch one so the floor
    # includes the real module load the program pays.
    floor_code = "import pulumi\n" + "".join(
        f"from pulumi_azure_native import {name}\ngetattr({name}, '__all__', None)\n"
        for name in modules
    )
    stack_file = REPO_ROOT / f"Pulumi.{args.stack}.yaml"
    commands = {
        "floor": [sys.executable, "-c", floor_code],
        "docker": [sys.executable, "-c", floor_code + "import pulumi_docker_build\n"],
        "samples": [sys.executable, str(HARNESS), str(stack_file)],
    }
    # Clones live inside the project: pipeline folders are stored relative to its root.
    scratch = Path(tempfile.mkdtemp(prefix=".bench-program-eval-", dir=REPO_ROOT))
    try:
        for size in sizes:
            defs = scratch / f"defs-{size}"
            defs.mkdir()
            clone_samples(defs, size)
            stack = stack_file_for(stack_file, defs, scratch / f"stack-{size}")
            commands[str(size)] = [sys.executable, str(HARNESS), str(stack)]
        samples = measure(commands, args.repeat)
    finally:
        shutil.rmtree(scratch)

    def wall(label: str) -> float:
        return median([s.seconds for s in samples[label]])

    def cpu(label: str) -> float:
        return median([s.cpu for s in samples[label]])

    def peak(label: str) -> float:
        return median([s.peak_mb for s in samples[label]])

    def evaluation(label: str) -> float:
        return median([json.loads(s.stdout)["seconds"] for s in samples[label]])

    def resources(label: str) -> int:
        return len(json.loads(samples[label][-1].stdout)["registrations"])

    floor_s, floor_cpu, floor_mb = wall("floor"), cpu("floor"), peak("floor")
    print(f"python {sys.version.split()[0]}, {args.repeat} interleaved runs each, medians")
    print(f"azure-native submodules imported by the program: {', '.join(modules)}")
    header = f"{'':<44} {'res.':>5} {'wall s':>7} {'cpu s':>6} {'eval s':>7} {'peak MB':>8}"
    print(f"{header} {'x wall':>7} {'x cpu':>6} {'x mem':>6}")
    print(f"{'import floor: pulumi + those submodules':<44} {'':>5} {floor_s:>7.3f} "
          f"{floor_cpu:>6.2f} {'':>7} {floor_mb:>8.1f} {1:>7.2f} {1:>6.2f} {1:>6.2f}")  # fmt: skip
    rows = [("docker", "  floor + pulumi_docker_build"), ("samples", f"{stack_file.name} as is")]
    rows += [(str(n), f"{stack_file.name}, samples cloned to {n} pipelines") for n in sizes]
    for label, text in rows:
        evaluated = f"{evaluation(label):>7.3f}" if label != "docker" else f"{'':>7}"
        count = f"{resources(label):>5}" if label != "docker" else f"{'':>5}"
        print(
            f"{text:<44} {count} {wall(label):>7.3f} {cpu(label):>6.2f} {evaluated} "
            f"{peak(label):>8.1f} {wall(label) / floor_s:>7.2f} {cpu(label) / floor_cpu:>6.2f} "
            f"{peak(label) / floor_mb:>6.2f}"
        )
    # Linear growth: the cost of one more pipeline stays the same from one size to the next.
    for low, high in itertools.pairwise(sizes):
        per_wall = (wall(str(high)) - wall(str(low))) / (high - low)
        per_cpu = (cpu(str(high)) - cpu(str(low))) / (high - low)
        print(
            f"per added pipeline, {low} -> {high}: wall {per_wall * 1000:6.1f} ms, "
            f"cpu {per_cpu * 1000:6.1f} ms"
        )


if __name__ == "__main__":
    main()
