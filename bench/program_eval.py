"""Cost of evaluating the Pulumi program under mocks, next to the bare import floor.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/program_eval.py [--repeat N]
[--stack dev]`.

Each measurement is a fresh interpreter (what `pulumi preview` pays on every run), repeated N
times, medians reported:

- floor: `import pulumi` plus the `pulumi_azure_native` submodules the program imports (read from
  the program's own import statements, so the list stays true), each actually loaded (they are
  lazy modules); also shown with `pulumi_docker_build`, the program's other SDK;
- program: tests/program/mock_program.py running the real program (`__main__.py`) for a stack
  file under the recording mocks (settings, names, context hash of docker/, every resource
  registration); "eval" is the part after the harness's own imports, as timed inside the process.

Wall time and peak RSS (ru_maxrss of the child) are measured side by side in one run; their ratio
is the figure to compare, since absolute timings on shared machines are noisy.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
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
        return Sample(seconds, usage.ru_maxrss / 1024, out.read().decode())


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--stack", default="dev", help="stack file Pulumi.<stack>.yaml to run")
    args = parser.parse_args()

    modules = azure_native_submodules()
    # azure-native submodules load lazily, on first attribute access: touch one so the floor
    # includes the real module load the program pays.
    floor_code = "import pulumi\n" + "".join(
        f"from pulumi_azure_native import {name}\ngetattr({name}, '__all__', None)\n"
        for name in modules
    )
    stack_file = REPO_ROOT / f"Pulumi.{args.stack}.yaml"
    samples = measure(
        {
            "floor": [sys.executable, "-c", floor_code],
            "docker": [sys.executable, "-c", floor_code + "import pulumi_docker_build\n"],
            "program": [sys.executable, str(HARNESS), str(stack_file)],
        },
        args.repeat,
    )
    floor, with_docker, program = samples["floor"], samples["docker"], samples["program"]
    evals = [json.loads(s.stdout)["seconds"] for s in program]
    resources = len(json.loads(program[-1].stdout)["registrations"])

    floor_s, floor_mb = median([s.seconds for s in floor]), median([s.peak_mb for s in floor])
    prog_s, prog_mb = median([s.seconds for s in program]), median([s.peak_mb for s in program])
    print(f"python {sys.version.split()[0]}, {args.repeat} interleaved runs each, medians")
    print(f"azure-native submodules imported by the program: {', '.join(modules)}")
    print(f"{'':<52} {'wall s':>8} {'peak MB':>8}")
    print(f"{'import floor: pulumi + those submodules':<52} {floor_s:>8.3f} {floor_mb:>8.1f}")
    dock_s, dock_mb = (
        median([s.seconds for s in with_docker]),
        median([s.peak_mb for s in with_docker]),
    )
    print(f"{'  floor + pulumi_docker_build':<52} {dock_s:>8.3f} {dock_mb:>8.1f}")
    label = f"program under mocks, {stack_file.name} ({resources} res.)"
    print(f"{label:<52} {prog_s:>8.3f} {prog_mb:>8.1f}")
    print(f"{'  of which program evaluation (in-process)':<52} {median(evals):>8.3f}")
    print(f"{'ratio program / floor':<52} {prog_s / floor_s:>8.2f} {prog_mb / floor_mb:>8.2f}")


if __name__ == "__main__":
    main()
