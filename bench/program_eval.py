"""Cost of evaluating the Pulumi program under mocks, next to the bare import floor.

Prints figures; asserts nothing. Usage: `.venv/bin/python -m bench.program_eval [--repeat N]
[--stack dev] [--sizes 1,10,100,500] [--against DIR]`.

Each measurement is a fresh interpreter (what `pulumi preview` pays on every run), repeated N
times, medians reported:

- floor: `import pulumi` plus the `pulumi_azure_native` submodules the program loads for the stack
  (found by running it once and looking at what it loaded: they are lazy modules, and a stack
  without a Data Factory never loads `datafactory`, the largest), each actually loaded; also
  shown with `pulumi_docker_build`, the program's other SDK, and with every submodule the
  program imports for any stack (read from its import statements);
- program: tests/program/mock_program.py running the real program (`__main__.py`) for a stack
  file under the recording mocks (settings, names, context hash of docker/, every resource
  registration); "eval" is the part after the harness's own imports, as timed inside the process.

- the same program with the samples cloned to each of `--sizes` pipelines (code folders copied,
  names made unique, `pipelineDefs` pointed at them through a copy of the stack file), so growth
  with the number of pipelines shows next to the floor.

`--against DIR` runs the same clones through another checkout of the project too (its own
program and harness, e.g. a worktree of main before a change), interleaved with this one, and
prints its rows and the CPU ratio of this checkout to it: a before/after in one run.

`--python PY` runs the floor and the same clones (this checkout's program and harness) with
another interpreter too, interleaved, each of its rows divided by its own floor (and that floor
by this interpreter's, so the two SDKs' import costs compare too): e.g. a venv
with a newer Pulumi SDK than the pinned one, made by `bench/pulumi_venv.py` (the program never
imports the Azure ML SDKs whose pins hold Pulumi back, so it runs there unchanged).

Bytecode is cached as on any machine after the first run, even where PYTHONDONTWRITEBYTECODE is
set (as on these build machines, where the checkout's modules would otherwise be compiled from
source by every child while the installed packages' are not): the children write and read it in
a temporary PYTHONPYCACHEPREFIX, filled by the unrecorded warm-up round, so the checkout stays
clean and the floor and the program are measured alike.

`--instructions` also runs each child once under valgrind (cachegrind without cache simulation)
and prints the instructions it executed: a count that does not move with the machine's load, for
before/after comparisons of the program (`--against`) that timing on a shared machine cannot
settle. It is not the goal's measure: importing (the floor) runs at fewer instructions per second
than the program's registrations, so the two ratios differ.

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
from concurrent.futures import ThreadPoolExecutor
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


# Runs the harness and reports, on exit, the azure-native submodules it actually loaded (a loaded
# submodule has modules of its own in sys.modules; an untouched one is a lazy placeholder).
LOADED_PROBE = """
import atexit, runpy, sys
def report():
    names = {m.split('.')[1] for m in sys.modules
             if m.startswith('pulumi_azure_native.') and m.count('.') >= 2}
    print('azure-native-loaded:' + ','.join(sorted(names)), file=sys.stderr)
atexit.register(report)
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name='__main__')
"""


def loaded_submodules(stack_file: Path) -> list[str]:
    """`pulumi_azure_native` submodules the program loads for `stack_file`."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED_PROBE, str(HARNESS), str(stack_file)],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    for line in done.stderr.splitlines():
        if line.startswith("azure-native-loaded:"):
            return [name for name in line.split(":", 1)[1].split(",") if name]
    raise SystemExit(f"the program did not run for {stack_file}:\n{done.stderr}")


def import_code(modules: list[str]) -> str:
    """`import pulumi` and each of `modules` loaded: azure-native submodules load lazily, on
    first attribute access, so one is touched."""
    return "import pulumi\n" + "".join(
        f"from pulumi_azure_native import {name}\ngetattr({name}, '__all__', None)\n"
        for name in modules
    )


def azure_native_submodules() -> list[str]:
    """`pulumi_azure_native` submodules imported by the program and its components."""
    found: set[str] = set()
    for path in PROGRAM_FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "pulumi_azure_native":
                found.update(alias.name for alias in node.names)
    return sorted(found)


@dataclass(frozen=True)
class Command:
    """A child to measure: its argv, run in `root` with `root` first on the import path."""

    argv: list[str]
    root: Path = REPO_ROOT
    floor: str = "floor"
    """Label of the floor this command's ratios are taken to."""


def run_child(command: Command) -> Sample:
    """Run `command` to completion; wall time and the child's own peak RSS (os.wait4)."""
    argv = command.argv
    env = {**os.environ, "PYTHONPATH": str(command.root)}
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(argv, cwd=command.root, env=env, stdout=out, stderr=err)
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


INSTRUCTIONS = re.compile(r"I\s+refs:\s+([\d,]+)")


def count_instructions(command: Command) -> int:
    """Instructions `command` executes (its user space), counted by valgrind's cachegrind."""
    argv = [
        "valgrind",
        "--tool=cachegrind",
        "--cache-sim=no",
        "--cachegrind-out-file=/dev/null",
        *command.argv,
    ]
    env = {**os.environ, "PYTHONPATH": str(command.root)}
    done = subprocess.run(argv, cwd=command.root, env=env, capture_output=True, text=True)
    found = INSTRUCTIONS.search(done.stderr)
    if done.returncode != 0 or found is None:
        raise SystemExit(f"valgrind {command.argv[:2]} failed:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def count_all(commands: dict[str, Command]) -> dict[str, int]:
    """:func:`count_instructions` of every command, as many at once as there are cores (the counts
    do not depend on load)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = pool.map(count_instructions, commands.values())
        return dict(zip(commands, counts, strict=True))


def measure(commands: dict[str, Command], repeat: int) -> dict[str, list[Sample]]:
    """Samples of each command, interleaved round by round so drift on a shared machine hits all
    of them alike; one unrecorded warm-up round first (bytecode, page cache)."""
    for argv in commands.values():
        run_child(argv)
    samples: dict[str, list[Sample]] = {label: [] for label in commands}
    for _ in range(repeat):
        for label, argv in commands.items():
            samples[label].append(run_child(argv))
    return samples


def pulumi_version(python: Path) -> str:
    """`pulumi <version>` as installed for interpreter `python`."""
    code = "import importlib.metadata as m; print(m.version('pulumi'))"
    try:
        done = subprocess.run([str(python), "-c", code], capture_output=True, text=True)
    except OSError as exc:
        raise SystemExit(f"{python}: cannot run it: {exc.strerror}") from None
    if done.returncode != 0:
        raise SystemExit(f"{python}: cannot read its pulumi version:\n{done.stderr}")
    return f"pulumi {done.stdout.strip()}"


def interpreter_label(python: Path) -> str:
    """The row prefix of another interpreter's runs: its pulumi version."""
    return f"{pulumi_version(python)}: "


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


def stack_file_for(base: Path, defs: Path, folder: Path, root: Path = REPO_ROOT) -> Path:
    """A copy of stack file `base` (same stack name) whose `pipelineDefs` is `defs`, a folder
    inside project `root`."""
    folder.mkdir(parents=True, exist_ok=True)
    text = base.read_text(encoding="utf-8").rstrip("\n")
    relative = defs.relative_to(root).as_posix()
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
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout of the project (e.g. a worktree of main) run on the same clones",
    )
    parser.add_argument(
        "--python",
        type=Path,
        help="another interpreter (e.g. a venv with a newer pulumi) run on the floor and clones",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each child's instructions once under valgrind (load-independent)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        # Inherited by every child (see the module docstring).
        os.environ["PYTHONPYCACHEPREFIX"] = pycache
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        report(args)


def report(args: argparse.Namespace) -> None:
    """Measure everything `args` asks for and print the table."""
    sizes = [int(n) for n in args.sizes.split(",")]
    roots = {"": REPO_ROOT}
    if args.against is not None:
        against = args.against.resolve()
        if not (against / "tests" / "program" / "mock_program.py").is_file():
            raise SystemExit(f"--against {against}: no tests/program/mock_program.py there")
        roots["against "] = against
    other = interpreter_label(args.python) if args.python is not None else None

    stack_file = REPO_ROOT / f"Pulumi.{args.stack}.yaml"
    modules = loaded_submodules(stack_file)
    everything = azure_native_submodules()
    floor_code = import_code(modules)
    commands = {
        "floor": Command([sys.executable, "-c", floor_code]),
        "docker": Command([sys.executable, "-c", floor_code + "import pulumi_docker_build\n"]),
        "any stack": Command([sys.executable, "-c", import_code(everything)]),
        "samples": Command([sys.executable, str(HARNESS), str(stack_file)]),
    }
    if other is not None:
        commands[f"{other}floor"] = Command([str(args.python), "-c", floor_code])
    # Clones live inside each project: pipeline folders are stored relative to its root.
    scratches = [
        Path(tempfile.mkdtemp(prefix=".bench-program-eval-", dir=root)) for root in roots.values()
    ]
    try:
        for (tag, root), scratch in zip(roots.items(), scratches, strict=True):
            harness = root / HARNESS.relative_to(REPO_ROOT)
            for size in sizes:
                defs = scratch / f"defs-{size}"
                defs.mkdir()
                clone_samples(defs, size)
                stack = stack_file_for(stack_file, defs, scratch / f"stack-{size}", root)
                commands[f"{tag}{size}"] = Command([sys.executable, str(harness), str(stack)], root)
                if other is not None and not tag:
                    commands[f"{other}{size}"] = Command(
                        [str(args.python), str(harness), str(stack)], root, f"{other}floor"
                    )
        samples = measure(commands, args.repeat)
        counted = count_all(commands) if args.instructions else {}
    finally:
        for scratch in scratches:
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
    print(
        f"python {sys.version.split()[0]}, {pulumi_version(Path(sys.executable))}, "
        f"{args.repeat} interleaved runs each, medians"
    )
    print(f"azure-native submodules the program loads for {stack_file.name}: {', '.join(modules)}")
    others = sorted(set(everything) - set(modules))
    print(f"  and for other stacks (imported, not loaded here): {', '.join(others) or 'none'}")
    if args.against is not None:
        print(f"against: {roots['against ']} (its own program and harness, same clones)")
    if other is not None:
        print(f"{other.strip()} {args.python} (this program and harness, same clones)")
    header = f"{'':<52} {'res.':>5} {'wall s':>7} {'cpu s':>6} {'eval s':>7} {'peak MB':>8}"
    print(f"{header} {'x wall':>7} {'x cpu':>6} {'x mem':>6}")
    print(f"{'import floor: pulumi + those submodules':<52} {'':>5} {floor_s:>7.3f} "
          f"{floor_cpu:>6.2f} {'':>7} {floor_mb:>8.1f} {1:>7.2f} {1:>6.2f} {1:>6.2f}")  # fmt: skip
    rows = [
        ("docker", "  floor + pulumi_docker_build"),
        ("any stack", "  pulumi + every submodule the program imports"),
        ("samples", f"{stack_file.name} as is"),
    ]
    tags = list(roots)
    for tag in roots:
        rows += [(f"{tag}{n}", f"{tag}{stack_file.name}, samples x {n} pipelines") for n in sizes]
    if other is not None:
        tags.append(other)
        rows.append((f"{other}floor", f"{other}import floor"))
        rows += [(f"{other}{n}", f"{other}{stack_file.name}, samples x {n}") for n in sizes]
    for label, text in rows:
        program = label not in ("docker", "any stack") and not label.endswith("floor")
        evaluated = f"{evaluation(label):>7.3f}" if program else f"{'':>7}"
        count = f"{resources(label):>5}" if program else f"{'':>5}"
        base = commands[label].floor
        print(
            f"{text:<52} {count} {wall(label):>7.3f} {cpu(label):>6.2f} {evaluated} "
            f"{peak(label):>8.1f} {wall(label) / wall(base):>7.2f} {cpu(label) / cpu(base):>6.2f} "
            f"{peak(label) / peak(base):>6.2f}"
        )
    # Linear growth: the cost of one more pipeline stays the same from one size to the next.
    for tag in tags:
        for low, high in itertools.pairwise(sizes):
            per_wall = (wall(f"{tag}{high}") - wall(f"{tag}{low}")) / (high - low)
            per_cpu = (cpu(f"{tag}{high}") - cpu(f"{tag}{low}")) / (high - low)
            per_mb = (peak(f"{tag}{high}") - peak(f"{tag}{low}")) / (high - low)
            print(
                f"{tag}per added pipeline, {low} -> {high}: wall {per_wall * 1000:6.1f} ms, "
                f"cpu {per_cpu * 1000:6.1f} ms, peak {per_mb * 1000:6.0f} KB"
            )
    if args.against is not None:
        ratios = ", ".join(f"{n}: {cpu(str(n)) / cpu(f'against {n}'):.2f}" for n in sizes)
        print(f"cpu of this checkout / against, by pipelines: {ratios}")
    if counted:
        print_instructions(counted, commands, rows, tags, sizes)


def print_instructions(
    counted: dict[str, int],
    commands: dict[str, Command],
    rows: list[tuple[str, str]],
    tags: list[str],
    sizes: list[int],
) -> None:
    """The instruction counts: each child's, its ratio to its floor, and per added pipeline."""
    print("instructions (valgrind, one run each; load-independent, not the goal's measure):")
    print(f"{'':<52} {'G instr':>8} {'x floor':>8}")
    print(
        f"{'import floor: pulumi + those submodules':<52} {counted['floor'] / 1e9:>8.3f} {1:>8.2f}"
    )
    for label, text in rows:
        base = commands[label].floor
        print(f"{text:<52} {counted[label] / 1e9:>8.3f} {counted[label] / counted[base]:>8.2f}")
    for tag in tags:
        for low, high in itertools.pairwise(sizes):
            per = (counted[f"{tag}{high}"] - counted[f"{tag}{low}"]) / (high - low)
            print(f"{tag}per added pipeline, {low} -> {high}: {per / 1e6:6.1f} M instructions")
    if any(label.startswith("against ") for label in counted):
        ratios = ", ".join(f"{n}: {counted[str(n)] / counted[f'against {n}']:.3f}" for n in sizes)
        print(f"instructions of this checkout / against, by pipelines: {ratios}")


if __name__ == "__main__":
    main()
