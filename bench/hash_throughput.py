"""Content-hash throughput of code trees (MB/s), per reading strategy, next to what the machine
allows, in one run.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/hash_throughput.py [--repeat N]`.

Shapes: 2,048 files of 2 KiB (the shape of real code folders, where per-file cost dominates),
folders of 64 KiB files (1, 16 and 128 MB) and 8 files of 16 MiB (large files). For each, medians
of N warm passes (page cache filled by a first pass), the variants interleaved in every pass so
drift on a shared machine hits them alike:

- `tree_digest` as the program, the provider and `amlpipe hash` call it ("auto": one thread until
  the bytes read show the tree is big, then a few), with the strategy it chose; its CPU time as
  MB per CPU-second (all threads; what the hash costs when the machine is busy);
- the same forced to one thread ("single") and to threads from the first file ("parallel");
- read floor: open + read + close of every file by path, no hashing, one thread;
- sha256 floor: hashlib over the same bytes already in memory, one buffer per file.

`--baseline DIR` adds the `tree_digest` of another checkout (its infra/definitions/hashing.py,
e.g. main before a change), interleaved with the rest: wall and CPU MB/s, and a check that it
gives the same digest.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from infra.definitions.hashing import tree_digest

# (label, number of files, KiB per file)
SHAPES = [
    ("2,048 files of 2 KiB", 2048, 2),
    ("1 MB of 64 KiB files", 16, 64),
    ("16 MB of 64 KiB files", 256, 64),
    ("128 MB of 64 KiB files", 2048, 64),
    ("128 MB of 16 MiB files", 8, 16 * 1024),
]


def make_tree(root: Path, files: int, file_kb: int) -> list[Path]:
    """Random files spread over 8 subfolders; their paths."""
    paths = []
    for index in range(files):
        folder = root / f"pkg{index % 8}"
        folder.mkdir(exist_ok=True)
        path = folder / f"f{index}.bin"
        path.write_bytes(os.urandom(file_kb * 1024))
        paths.append(path)
    return paths


def baseline_tree_digest(checkout: Path) -> Callable[[Path], Any]:
    """`tree_digest` of another checkout's hashing module (loaded under another name)."""
    path = checkout / "infra" / "definitions" / "hashing.py"
    spec = importlib.util.spec_from_file_location("baseline_hashing", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"no hashing module at {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    function: Callable[[Path], Any] = module.tree_digest
    return function


def read_all(paths: list[Path]) -> None:
    """The I/O floor: every file opened, read whole and closed."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)


def measure(actions: dict[str, Callable[[], object]], repeat: int) -> dict[str, list[float]]:
    """Wall and CPU seconds of each action, `repeat` interleaved passes after a warm-up pass."""
    samples: dict[str, list[float]] = {}
    for round_index in range(repeat + 1):
        for label, action in actions.items():
            wall, cpu = time.perf_counter(), time.process_time()
            action()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            if round_index:
                samples.setdefault(label, []).append(wall)
                samples.setdefault(label + " cpu", []).append(cpu)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    baseline = baseline_tree_digest(args.baseline.resolve()) if args.baseline else None
    print(f"cores: {os.cpu_count()}, medians of {args.repeat} warm passes; MB = 10^6 bytes")
    print(
        f"{'tree':<24} {'files':>5} {'MB':>6} {'auto MB/s':>9} {'chose':<8} {'cpu MB/s':>8} "
        f"{'single':>7} {'parallel':>8} {'read':>7} {'sha':>7}"
        + (f" {'baseline':>8} {'base cpu':>8}" if baseline else "")
    )
    for label, files, file_kb in SHAPES:
        print(shape_line(label, files, file_kb, args.repeat, baseline))


def shape_line(
    label: str, files: int, file_kb: int, repeat: int, baseline: Callable[[Path], Any] | None
) -> str:
    """Write one tree shape to a temporary folder, measure every variant on it, format a line."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_tree(root, files, file_kb)
        size = sum(p.stat().st_size for p in paths) / 1e6
        contents = [p.read_bytes() for p in paths]
        chosen = tree_digest(root).strategy
        actions: dict[str, Callable[[], object]] = {
            "auto": lambda: tree_digest(root),
            "single": lambda: tree_digest(root, strategy="single"),
            "parallel": lambda: tree_digest(root, strategy="parallel"),
            "read": lambda: read_all(paths),
            "sha": lambda: [hashlib.sha256(c).digest() for c in contents],
        }
        if baseline is not None:
            if baseline(root).digest != tree_digest(root).digest:
                raise SystemExit(f"{label}: the baseline gives another digest")
            actions["baseline"] = lambda: baseline(root)
        samples = measure(actions, repeat)
    rate = {key: size / statistics.median(times) for key, times in samples.items()}
    return (
        f"{label:<24} {files:>5} {size:>6.1f} {rate['auto']:>9.1f} {chosen:<8} "
        f"{rate['auto cpu']:>8.1f} {rate['single']:>7.1f} {rate['parallel']:>8.1f} "
        f"{rate['read']:>7.1f} {rate['sha']:>7.1f}"
        + (f" {rate['baseline']:>8.1f} {rate['baseline cpu']:>8.1f}" if baseline else "")
    )


if __name__ == "__main__":
    main()
