"""Located problems in pipeline definitions: every error names file, key path and line."""

from __future__ import annotations

from dataclasses import dataclass

KeyPath = tuple[str | int, ...]


def format_key_path(path: KeyPath) -> str:
    """Render a key path the way users write it: `steps[1].args[0]`."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "<document>"


@dataclass(frozen=True)
class SpecError:
    """One problem in one definition file."""

    file: str
    line: int | None
    path: KeyPath
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {format_key_path(self.path)}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """Machine-readable form (for `amlpipe validate --json`)."""
        return {
            "file": self.file,
            "line": self.line,
            "path": format_key_path(self.path),
            "message": self.message,
        }


class SpecErrors(Exception):
    """Raised when definitions are invalid; carries every problem found, sorted by location."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = sorted(errors, key=lambda e: (e.file, e.line or 0, str(e.path), e.message))
        super().__init__(self.render())

    def render(self) -> str:
        """All problems, one per line, with a count."""
        count = len(self.errors)
        lines = [f"{count} problem{'s' if count != 1 else ''} in pipeline definitions:"]
        lines += [f"  {e}" for e in self.errors]
        return "\n".join(lines)
