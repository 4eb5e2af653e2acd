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
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, medians of {args.repeat} warm passes; MB = 10^6 bytes")
    print(
        f"{'tree':<24} {'files':>5} {'MB':>6} {'auto MB/s':>9} {'chose':<8} {'cpu MB/s':>8} "
        f"{'single':>7} {'parallel':>8} {'read':>7} {'sha':>7}"
    )
    for label, files, file_kb in SHAPES:
        print(shape_line(label, files, file_kb, args.repeat))


def shape_line(label: str, files: int, file_kb: int, repeat: int) -> str:
    """Write one tree shape to a temporary folder, measure every variant on it, format a line."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = make_tree(root, files, file_kb)
        size = sum(p.stat().st_size for p in paths) / 1e6
        contents = [p.read_bytes() for p in paths]
        chosen = tree_digest(root).strategy
        samples = measure(
            {
                "auto": lambda: tree_digest(root),
                "single": lambda: tree_digest(root, strategy="single"),
                "parallel": lambda: tree_digest(root, strategy="parallel"),
                "read": lambda: read_all(paths),
                "sha": lambda: [hashlib.sha256(c).digest() for c in contents],
            },
            repeat,
        )
    rate = {key: size / statistics.median(times) for key, times in samples.items()}
    return (
        f"{label:<24} {files:>5} {size:>6.1f} {rate['auto']:>9.1f} {chosen:<8} "
        f"{rate['auto cpu']:>8.1f} {rate['single']:>7.1f} {rate['parallel']:>8.1f} "
        f"{rate['read']:>7.1f} {rate['sha']:>7.1f}"
    )


if __name__ == "__main__":
    main()
