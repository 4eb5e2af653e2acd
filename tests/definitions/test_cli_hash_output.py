"""`amlpipe hash` prints, when piped, what rich prints there, without loading rich."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table

from infra.cli import HASH_COLUMNS, main
from infra.plaintext import plain_table

ROWS = [
    ["prep", "97c1c97fe7f7c542", "2b80fee9679c49c9", "1", "2693"],
    # The widest table rich draws unchanged on 80 columns.
    ["a-longer-step-name-22c", "8e99672ace0fbbfb", "ea33cba8adade3c9", "12345", "0"],
]


def rich_lines(headers: tuple[str, ...], rows: list[list[str]]) -> list[str]:
    out = io.StringIO()
    table = Table(*headers)
    for row in rows:
        table.add_row(*row)
    Console(file=out, width=80).print(table)
    return out.getvalue().splitlines()


@pytest.mark.parametrize("rows", [ROWS, ROWS[:1], []])
def test_the_plain_table_is_the_table_rich_prints_to_a_pipe(rows: list[list[str]]) -> None:
    assert plain_table(HASH_COLUMNS, rows) == rich_lines(HASH_COLUMNS, rows)


def test_a_table_wider_than_80_columns_is_not_wrapped() -> None:
    # rich squeezes such a table into 80 columns (splitting names over lines); piped output
    # keeps one line per step, as grep and scripts want it.
    rows = [["s" * 64, *ROWS[0][1:]]]

    lines = plain_table(HASH_COLUMNS, rows)

    assert len(lines) == 5 and len(lines[3]) > 80 and "s" * 64 in lines[3]


def test_piped_hash_prints_the_digest_on_one_line_then_the_table_and_images(
    make_repo: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_repo()

    code = main(["hash", "demo", "--defs", str(folder.parent), "--image", "training=img:1"])

    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert re.fullmatch(r"pipeline demo: [0-9a-f]{64}", lines[0]), lines[0]
    assert lines[1].startswith("┏") and lines[-2].startswith("└")
    assert [line.split()[1] for line in lines[4:-2]] == ["prep", "train"]
    assert lines[-1] == "image training: img:1"
