"""Errors the runner reports to the user: what went wrong and what to do about it."""

from __future__ import annotations


class RunnerError(Exception):
    """A problem that stops a run before or outside any step (bad parameter, no Docker, no image).

    `hint` says what to do; the CLI prints both and exits with status 2.
    """

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message
