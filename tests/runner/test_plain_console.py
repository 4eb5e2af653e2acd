"""Without a terminal, `amlpipe run` prints exactly what rich prints there, without loading rich
for the lines it can print itself: compared with rich on hostile text."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from rich.markup import escape as rich_escape

from infra.plaintext import PlainConsole, escape, markup_to_plain

REPO_ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    "plain line",
    "",
    "emoji :smile: and :thumbs_up: at 12:30:45",
    "::",
    "http://host:80/p:q",
    "[bold]not markup[/bold] [/] [link=x]y[/link] [@click]h[/] [#ff0000]hex[/]",
    "back\\slash \\[x] \\\\[red]z",
    "ends with a backslash \\",
    "ends with two \\\\",
    "a\\[1 and \\\\[b",
    "tab\there",
    "bell\x07 carriage\rreturn escape\x1b[31m",
    "unicode ünï 日本語 🎉 ﬁ",
    "trailing spaces   ",
    "x" * 79,
    "x" * 80,
    "x" * 81,
    "y" * 300,
    "[",
    "]",
    "[[bold]]",
    "▶ step started · done …",
]
MARKUP = [
    "[bold]run demo[/] 20260101-000000-abcdef · executor process · jobs 2",
    "[cyan]prep [/] │ text",
    "[bold red]step x failed:[/] exit code 3",
    "[dim]… 1,000 more lines only in /tmp/x.log[/]",
    "[yellow]warning:[/] 2 problem(s) in defs:",
    "[red]unclosed",
    "[/]",
    "[/red] closes nothing",
    "[red]a[/blue]",
    "[red][bold]nested[/red] tail[/]",
]


def printed(console: Console | PlainConsole, markup: str, soft_wrap: bool) -> str:
    out = io.StringIO()
    real = sys.stdout
    sys.stdout = out
    try:
        console.print(markup, soft_wrap=soft_wrap)
    except Exception as exc:  # rich refuses some markup: the plain console must refuse it too
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.stdout = real
    return out.getvalue()


@pytest.mark.parametrize("columns", ["80", "60", "200"])
@pytest.mark.parametrize("soft_wrap", [True, False])
def test_plain_console_prints_what_rich_prints_without_a_terminal(
    monkeypatch: pytest.MonkeyPatch, columns: str, soft_wrap: bool
) -> None:
    monkeypatch.setenv("COLUMNS", columns)
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "NO_COLOR"):
        monkeypatch.delenv(name, raising=False)
    texts = [*MARKUP, *(f"[cyan]step[/] │ {escape(t)}" for t in HOSTILE)]
    for markup in texts:
        expected = printed(Console(), markup, soft_wrap)
        assert printed(PlainConsole(), markup, soft_wrap) == expected, repr(markup)


def test_escape_is_riches_escape() -> None:
    for text in [*HOSTILE, *MARKUP]:
        assert escape(text) == rich_escape(text), repr(text)


def test_markup_beyond_style_tags_is_left_to_rich() -> None:
    assert markup_to_plain("[bold]a[/] \\[b]") == "a [b]"
    for markup in ["[link=https://x]a[/link]", "[@click]a[/]", "[/]", "[red]a[/blue]"]:
        assert markup_to_plain(markup) is None, markup


def test_a_piped_run_that_works_never_loads_rich(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    (defs / "p" / "code").mkdir(parents=True)
    (defs / "p" / "code" / "main.py").write_text("print('hello [bold]x[/] :) 1:2')\n")
    (defs / "p" / "pipeline.yaml").write_text(
        "name: p\nexperiment: p\ncompute: cpu-cluster\n"
        "steps:\n  - {name: s, kind: python, code: code, script: main.py}\n"
    )
    code = (
        "import sys\n"
        "from infra.cli import main\n"
        f"status = main(['run', 'p', '--defs', {str(defs)!r}, '--executor', 'process',\n"
        f"               '--run-dir', {str(tmp_path / 'run')!r}])\n"
        "print('LOADED', sorted(m for m in sys.modules if m.split('.')[0] == 'rich'))\n"
        "sys.exit(status)\n"
    )
    # Piped, and nothing telling rich to treat the pipe as a terminal.
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert "s │ hello [bold]x[/] :) 1:2" in result.stdout
    assert "LOADED []" in result.stdout
