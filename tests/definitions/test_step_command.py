"""The command a step runs comes from one rule per step kind, shared by every back end."""

from __future__ import annotations

import typing

import pytest

from infra.definitions.command import PlainCommand, ScriptCommand, step_command
from infra.definitions.model import AnyStep, CommandStep, PythonStep, RStep


def _step(kind: type[AnyStep]) -> AnyStep:
    common = {"name": "s", "code": "."}
    if kind is CommandStep:
        return CommandStep(kind="command", command=["bash", "-c", "echo hi"], **common)
    if kind is PythonStep:
        return PythonStep(kind="python", script="train.py", **common)
    return RStep(kind="r", script="fit.R", **common)


@pytest.mark.parametrize("kind", typing.get_args(AnyStep))
def test_every_step_kind_has_a_command(kind: type[AnyStep]) -> None:
    command = step_command(_step(kind))
    assert command.argv(), "a step kind without a command line"


def test_scripts_run_with_their_language_interpreter() -> None:
    assert step_command(_step(PythonStep)) == ScriptCommand("python", "train.py")
    assert step_command(_step(RStep)).argv() == ["Rscript", "fit.R"]
    local = {"python": "/usr/bin/python3", "r": "/opt/R/bin/Rscript"}
    assert step_command(_step(PythonStep)).argv(local) == ["/usr/bin/python3", "train.py"]
    assert step_command(_step(RStep)).argv(local) == ["/opt/R/bin/Rscript", "fit.R"]


def test_a_plain_command_runs_as_written_whatever_the_interpreters() -> None:
    command = step_command(_step(CommandStep))
    assert command == PlainCommand(("bash", "-c", "echo hi"))
    assert command.argv({"python": "python3", "r": "R"}) == ["bash", "-c", "echo hi"]


def test_diff_text_names_python_scripts_alone_and_others_by_command_line() -> None:
    assert step_command(_step(PythonStep)).text() == "train.py"
    assert step_command(_step(RStep)).text() == "Rscript fit.R"
    assert step_command(_step(CommandStep)).text() == "bash -c echo hi"
