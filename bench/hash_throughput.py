"""Content-hash throughput of code trees (MB/s), next to what the machine allows, in one run.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/hash_throughput.py [--repeat N]`.

Shapes: folders of 64 KiB files (1, 16 and 128 MB), one of 8 files of 16 MiB (large files), and
2,048 files of 2 KiB (the shape of real code folders, where per-file cost dominates). For each,
medians of N warm passes (page cache filled by a first pass) of:

- `tree_digest`: the content hash the program, the provider and `amlpipe hash` use;
- read floor: open + read + close of every file, no hashing, one thread (system calls and copies);
- sha256 floor: hashlib over the same bytes already in memory, one buffer per file (the hash).

The ratios say how close the tree hash comes to each floor on this machine, whatever its load.
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

from infra.definitions import tree_digest

# (label, number of files, KiB per file)
SHAPES = [
    ("1 MB of 64 KiB files", 16, 64),
    ("16 MB of 64 KiB files", 256, 64),
    ("128 MB of 64 KiB files", 2048, 64),
    ("128 MB of 16 MiB files", 8, 16 * 1024),
    ("2,048 files of 2 KiB", 2048, 2),
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


def median_seconds(action: Callable[[], object], repeat: int) -> float:
    """Median wall seconds of `repeat` calls, after one unrecorded call."""
    action()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def read_all(paths: list[Path]) -> None:
    """The I/O floor: every file opened, read whole and closed."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            while os.read(fd, 1 << 20):
                pass
        finally:
            os.close(fd)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}, medians of {args.repeat} warm passes; MB = 10^6 bytes")
    header = f"{'tree':<24} {'files':>6} {'MB':>6} {'hash MB/s':>10} {'read MB/s':>10}"
    print(f"{header} {'sha MB/s':>9} {'/read':>6} {'/sha':>6}")
    for label, files, file_kb in SHAPES:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            paths = make_tree(root, files, file_kb)
            size = sum(p.stat().st_size for p in paths) / 1e6
            hashed = median_seconds(lambda root=root: tree_digest(root), args.repeat)
            read = median_seconds(lambda paths=paths: read_all(paths), args.repeat)
            contents = [p.read_bytes() for p in paths]
            sha = median_seconds(
                lambda contents=contents: [hashlib.sha256(c).digest() for c in contents],
                args.repeat,
            )
        rate, read_rate, sha_rate = size / hashed, size / read, size / sha
        print(
            f"{label:<24} {files:>6} {size:>6.1f} {rate:>10.1f} {read_rate:>10.1f} "
            f"{sha_rate:>9.1f} {rate / read_rate:>6.2f} {rate / sha_rate:>6.2f}"
        )


if __name__ == "__main__":
    main()
