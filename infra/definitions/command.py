"""The command a step runs, per step kind: the one rule every back end builds its command line from.

A step is either a script run by its language's interpreter (Python, R) or a plain command. The
Azure ML compiler, the local runner and the provider's readable summary all start from
:func:`step_command`; they differ only in how they spell the interpreter (the image's `python`, a
local `python3`, `Rscript`) and how they attach the resolved arguments. Adding a step kind means
adding a case here, and mypy (``assert_never``) then points at every place that must learn it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, assert_never

from infra.definitions.model import AnyStep, CommandStep, PythonStep, RStep

Language = Literal["python", "r"]

DEFAULT_INTERPRETERS: Mapping[str, str] = {"python": "python", "r": "Rscript"}
"""How each language's interpreter is called inside the training image (it puts its venv's
`python` first on PATH; R runs with `Rscript`, since Azure's `RScriptStep` is deprecated)."""


@dataclass(frozen=True)
class ScriptCommand:
    """A script run by the interpreter of its language, from the step's code folder."""

    language: Language
    script: str

    def argv(self, interpreters: Mapping[str, str] = DEFAULT_INTERPRETERS) -> list[str]:
        """Interpreter and script: the words before the step's arguments."""
        return [interpreters[self.language], self.script]

    def text(self) -> str:
        """Short text for diffs: a Python script by its name, others with their interpreter."""
        if self.language == "python":
            return self.script
        return " ".join(self.argv())


@dataclass(frozen=True)
class PlainCommand:
    """An argv list run as is, from the step's code folder."""

    command: tuple[str, ...]

    def argv(self, interpreters: Mapping[str, str] = DEFAULT_INTERPRETERS) -> list[str]:
        """The command's words (no interpreter involved)."""
        return list(self.command)

    def text(self) -> str:
        """The command line as one string, for diffs."""
        return " ".join(self.command)


StepCommand = ScriptCommand | PlainCommand


def step_command(step: AnyStep) -> StepCommand:
    """What `step` runs before its arguments, decided by its kind (every kind handled)."""
    match step:
        case PythonStep():
            return ScriptCommand("python", step.script)
        case RStep():
            return ScriptCommand("r", step.script)
        case CommandStep():
            return PlainCommand(tuple(step.command))
        case _:
            assert_never(step)
