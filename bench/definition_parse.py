"""Parsing `pipeline.yaml`: the old round-trip loader against the bounded libyaml event reader.

Prints figures; asserts nothing. Usage: `.venv/bin/python bench/definition_parse.py [--repeat N]`.
Rows: each sample definition, a 1000-step pipeline (~150 KB), and a file of comments just under the
size limit (parsing must stay linear below it). Columns: ms per parse with ruamel's round-trip
loader (what the loader used before), with `infra.definitions.yamlsource.parse_yaml`, their ratio,
and the whole `load_pipeline` (parse + pydantic + meaning checks).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from ruamel.yaml import YAML

from infra.definitions.loader import find_repo_root, load_pipeline
from infra.definitions.yamlsource import MAX_FILE_BYTES, parse_yaml

ROOT = Path(__file__).resolve().parents[1]


def _ms(func: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _chain(steps: int) -> str:
    lines = ["name: chain", "experiment: chain", "compute: cpu", "steps:"]
    for index in range(steps):
        lines += [
            f"  - name: s{index}",
            "    kind: command",
            "    code: .",
            "    command: [echo]",
            f"    args: ['${{{{outputs.o}}}}', '${{{{steps.s{index - 1}.outputs.o}}}}']"
            if index
            else "    args: ['${{outputs.o}}']",
            "    outputs: [o]",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    texts = {
        p.parent.name: p.read_text() for p in sorted(ROOT.glob("pipeline_defs/*/pipeline.yaml"))
    }
    texts["chain-1000"] = _chain(1000)
    comment = "# " + "x" * 97 + "\n"
    texts["comments-1MiB"] = "name: c\n" + comment * ((MAX_FILE_BYTES - 100) // len(comment))
    print(f"{'input':<16}{'KiB':>8}{'ruamel rt ms':>14}{'new ms':>10}{'ratio':>8}")
    for name, text in texts.items():
        slow_repeat = max(1, args.repeat // (20 if len(text) > 50_000 else 1))
        old = _ms(lambda t=text: YAML(typ="rt").load(t), slow_repeat)  # type: ignore[misc]
        new = _ms(lambda t=text: parse_yaml(t), args.repeat)  # type: ignore[misc]
        print(f"{name:<16}{len(text) / 1024:>8.1f}{old:>14.2f}{new:>10.2f}{old / new:>7.1f}x")
    print()
    root = find_repo_root(ROOT)
    for file in sorted(ROOT.glob("pipeline_defs/*/pipeline.yaml")):
        whole = _ms(lambda f=file: load_pipeline(f, root), args.repeat)  # type: ignore[misc]
        print(f"load_pipeline {file.parent.name}: {whole:.2f} ms (parse + model + checks)")


if __name__ == "__main__":
    main()
