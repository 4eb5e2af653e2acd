"""Console output when it is not a terminal, exactly as rich prints it there, without loading rich.

rich costs a sixth of `amlpipe hash` and `amlpipe run` start-up, and on a pipe (CI logs, editors,
`| tee`) it prints no colour, no live display: plain lines. :class:`PlainConsole` prints those
lines itself for the markup the CLI writes (style tags, text escaped with :func:`escape`), and
hands anything rich might print differently to a real rich console on the same stream: emoji
codes (`:smile:`), control characters and tabs, characters whose width rich measures, lines rich
would wrap, markup it would refuse. Tests compare both on hostile text.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

# rich.markup's expressions: a tag (with the backslashes before it) and what escape() protects.
_TAG = re.compile(r"((\\*)\[([a-z#/@][^[]*?)])")
_ESCAPABLE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# Where rich would look a word up as an emoji code (rich.emoji's expression matches only here).
_EMOJI_CODE = re.compile(r":\S*?:")
# Printable ASCII and the glyphs the CLI draws: one cell each, as rich measures them.
_ONE_CELL = re.compile(r"[ -~│▶■·…━┏┓┃┡┩╇┳┴└┘─]*")
# Environment variables that make rich treat a pipe as a terminal (or measure it otherwise).
_RICH_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS")


def escape(text: str) -> str:
    """Text that markup shows as it is (what rich.markup.escape returns)."""
    escaped = _ESCAPABLE.sub(lambda m: f"{m[1]}{m[1]}\\{m[2]}", text)
    if escaped.endswith("\\") and not escaped.endswith("\\\\"):
        return escaped + "\\"
    return escaped


def markup_to_plain(markup: str) -> str | None:
    """The text rich shows for `markup` (tags dropped, escapes undone), or None when the markup
    holds anything beyond plain style tags (links, handlers, closes that match no open tag)."""
    parts: list[str] = []
    opened: list[str] = []
    position = 0
    for match in _TAG.finditer(markup):
        full, escapes, tag = match.groups()
        start, end = match.span()
        if start > position:
            parts.append(markup[position:start].replace("\\[", "["))
        position = end
        if escapes:
            backslashes, escaped = divmod(len(escapes), 2)
            parts.append("\\" * backslashes)
            if escaped:
                parts.append(full[len(escapes) :])
                continue
        if "=" in tag or "@" in tag:
            return None
        if not tag.startswith("/"):
            opened.append(tag.strip().lower())
        elif not (closing := tag[1:].strip().lower()):
            if not opened:
                return None
            opened.pop()
        elif closing in opened:
            del opened[len(opened) - 1 - opened[::-1].index(closing)]
        else:
            return None
    parts.append(markup[position:].replace("\\[", "["))
    return "".join(parts)


def rich_width() -> int:
    """The width rich gives a console whose stream is not a terminal: the first standard
    stream's terminal that answers, COLUMNS when set, else 80."""
    width = 0
    for fd in (0, 1, 2):
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        width = int(columns)
    return width or 80


def _shown_as_is(text: str, soft_wrap: bool) -> bool:
    """Whether rich prints `text` (already free of markup) unchanged on a non-terminal."""
    if _EMOJI_CODE.search(text):
        return False
    if soft_wrap:  # never wrapped: only control characters (tabs too) are changed
        return text.isprintable()
    return _ONE_CELL.fullmatch(text) is not None and len(text) <= rich_width()


def plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Lines of a table drawn as rich draws its default table (heavy head, one space of
    padding, left-aligned) when output is not a terminal and the table fits its width."""
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=True)]

    def rule(left: str, fill: str, middle: str, right: str) -> str:
        return left + middle.join(fill * (width + 2) for width in widths) + right

    def line(bar: str, cells: Sequence[str]) -> str:
        return bar + bar.join(f" {c:<{w}} " for c, w in zip(cells, widths, strict=True)) + bar

    return [
        rule("┏", "━", "┳", "┓"),
        line("┃", headers),
        rule("┡", "━", "╇", "┩"),
        *(line("│", row) for row in rows),
        rule("└", "─", "┴", "┘"),
    ]


def rich_sees_a_terminal(stderr: bool = False) -> bool:
    """Whether rich would treat stdout (or stderr) as a terminal: a tty, or an environment
    variable that tells rich to (then rich prints, with colour and live display)."""
    stream = sys.stderr if stderr else sys.stdout
    if any(name in os.environ for name in _RICH_TERMINAL_ENV):
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream: rich says no terminal too
        return False


class PlainConsole:
    """The part of rich's Console the CLI uses, for a stream that is not a terminal."""

    is_terminal = False

    def __init__(self, stderr: bool = False) -> None:
        self._stderr = stderr
        self._rich: Console | None = None

    @property
    def stream(self) -> object:
        """The stream written to, looked up at each print as rich does (tests swap it)."""
        return sys.stderr if self._stderr else sys.stdout

    def print(
        self,
        markup: str,
        *,
        style: str | None = None,
        highlight: bool | None = None,
        soft_wrap: bool = False,
    ) -> None:
        """Print one line of markup (style and highlighting show only on a terminal)."""
        text = markup_to_plain(markup)
        if text is None or not _shown_as_is(text, soft_wrap):
            self.rich().print(markup, style=style, highlight=highlight, soft_wrap=soft_wrap)
            return
        self.write_lines([text])

    def print_table(self, headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
        """Print a plain table; False (nothing printed) when rich would draw it otherwise."""
        lines = plain_table(headers, rows)
        if not all(_ONE_CELL.fullmatch(line) for line in lines):
            return False
        if len(lines[0]) > rich_width():
            return False
        self.write_lines(lines)
        return True

    def write_lines(self, lines: Sequence[str]) -> None:
        """Write lines and flush, as rich does after each print."""
        stream = sys.stderr if self._stderr else sys.stdout
        stream.write("".join(f"{line}\n" for line in lines))
        stream.flush()

    def rich(self) -> Console:
        """A real rich console on the same stream, for what only rich prints right."""
        if self._rich is None:
            from rich.console import Console

            self._rich = Console(stderr=self._stderr)
        return self._rich


def make_console(stderr: bool = False) -> Console | PlainConsole:
    """rich's Console where rich sees a terminal; a :class:`PlainConsole` everywhere else."""
    if rich_sees_a_terminal(stderr):
        from rich.console import Console

        return Console(stderr=stderr)
    return PlainConsole(stderr)
