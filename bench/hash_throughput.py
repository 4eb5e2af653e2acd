"""Hash throughput of step code folders (MB/s) for a few folder sizes.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/hash_throughput.py [--repeat N]`.
Each size is a folder of 64 KiB files (plus one folder of many small files, the common shape of
step code), hashed cold-ish (first pass) and warm (page cache), median of N passes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from infra.definitions import tree_digest

SIZES_MB = [1, 16, 128]
FILE_KB = 64


def make_tree(root: Path, total_mb: int, file_kb: int) -> None:
    """Random files spread over 8 subfolders."""
    count = max(1, total_mb * 1024 // file_kb)
    for index in range(count):
        folder = root / f"pkg{index % 8}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{index}.bin").write_bytes(os.urandom(file_kb * 1024))


def measure(root: Path, repeat: int) -> tuple[float, int, int]:
    """Median seconds of `repeat` warm passes, and files/bytes hashed."""
    digest = tree_digest(root)  # warm the page cache once
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        tree_digest(root)
        times.append(time.perf_counter() - start)
    return statistics.median(times), digest.files, digest.size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    print(f"{'tree':>22} {'files':>7} {'MB':>8} {'median s':>9} {'MB/s':>8}")
    shapes = [(mb, FILE_KB) for mb in SIZES_MB] + [(4, 2)]  # last: 2048 files of 2 KiB
    for total_mb, file_kb in shapes:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            make_tree(root, total_mb, file_kb)
            seconds, files, size = measure(root, args.repeat)
            label = f"{total_mb} MB of {file_kb} KiB files"
            mb = size / 1e6
            print(f"{label:>22} {files:>7} {mb:>8.1f} {seconds:>9.4f} {mb / seconds:>8.1f}")


if __name__ == "__main__":
    main()
