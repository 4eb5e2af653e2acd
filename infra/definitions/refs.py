"""Argument references and the one resolver shared by the Azure ML compiler and the local runner.

An argument is either a literal or, as a whole, one reference:

- ``${{parameters.NAME}}``: a pipeline parameter (`PipelineParameter` on Azure, a value locally);
- ``${{steps.STEP.outputs.NAME}}``: a named output of an upstream step (an input of this step);
- ``${{outputs.NAME}}``: a directory this step writes.

Arguments are parsed once, when a step is built (its `arguments`, see
:mod:`infra.definitions.model`); validation, the DAG and every back end read those. Back ends call
:func:`resolve_arguments` with their own :class:`ArgumentBinder`, so an argument means the same
thing in the cloud and on a laptop.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

_REF = re.compile(r"\$\{\{\s*(?P<body>[^}]*?)\s*\}\}")
_PARAM = re.compile(r"^parameters\.(?P<name>[A-Za-z][A-Za-z0-9_]*)$")
_INPUT = re.compile(
    r"^steps\.(?P<step>[A-Za-z][A-Za-z0-9_]*)\.outputs\.(?P<output>[A-Za-z][A-Za-z0-9_]*)$"
)
_OUTPUT = re.compile(r"^outputs\.(?P<name>[A-Za-z][A-Za-z0-9_]*)$")


class InvalidReference(ValueError):
    """An argument that looks like a reference but is not a valid one."""


@dataclass(frozen=True)
class Literal:
    """A plain argument, passed as its string form."""

    value: str


@dataclass(frozen=True)
class ParamRef:
    """Reference to a pipeline parameter."""

    name: str


@dataclass(frozen=True)
class InputRef:
    """Reference to a named output of an upstream step."""

    step: str
    output: str


@dataclass(frozen=True)
class OutputRef:
    """Reference to a directory the step itself writes."""

    name: str


Token = Literal | ParamRef | InputRef | OutputRef


@dataclass(frozen=True)
class Malformed:
    """An argument that looks like a reference but is not a valid one (validation reports it)."""

    raw: str
    message: str


Argument = Token | Malformed
RawArgument = str | int | float | bool


def format_value(value: str | int | float | bool) -> str:
    """The text a step receives for a value: the one rule for literals, parameter values and
    every back end.

    It is what the azureml SDK sends for a `PipelineParameter`: `str(value)` for a run's value
    (`_AevaGraphProvider._get_parameter_assignments`) and for the default (msrest serializes the
    `str`-typed `Parameter.default_value` with `str()`). So `True`/`False`, `7`, `0.1`, `1e-05`:
    a local run and a published pipeline give a step byte-identical arguments.
    """
    return str(value)


def parse_argument(value: str | int | float | bool) -> Token:
    """Parse one argument into a token; raise :class:`InvalidReference` for malformed references."""
    if not isinstance(value, str):
        return Literal(format_value(value))
    matches = list(_REF.finditer(value))
    if not matches:
        if "${{" in value:
            raise InvalidReference(f"unterminated reference {value!r}: expected ${{{{ ... }}}}")
        return Literal(value)
    if len(matches) > 1 or matches[0].span() != (0, len(value)):
        raise InvalidReference(
            f"reference must be a whole argument, not part of {value!r} "
            "(split it into separate arguments, e.g. ['--out', '${{outputs.model}}'])"
        )
    body = matches[0].group("body")
    if m := _PARAM.match(body):
        return ParamRef(m.group("name"))
    if m := _INPUT.match(body):
        return InputRef(m.group("step"), m.group("output"))
    if m := _OUTPUT.match(body):
        return OutputRef(m.group("name"))
    raise InvalidReference(
        f"unknown reference ${{{{{body}}}}}: expected parameters.NAME, "
        "steps.STEP.outputs.NAME or outputs.NAME"
    )


T = TypeVar("T", covariant=True)


class ArgumentBinder(Protocol[T]):
    """What a back end substitutes for each kind of token."""

    def literal(self, value: str) -> T: ...

    def parameter(self, name: str) -> T: ...

    def step_input(self, step: str, output: str) -> T: ...

    def step_output(self, name: str) -> T: ...


def parse_arguments(args: Sequence[RawArgument]) -> tuple[Argument, ...]:
    """Every argument parsed, malformed ones kept as :class:`Malformed` (with the reason)."""
    parsed: list[Argument] = []
    for raw in args:
        try:
            parsed.append(parse_argument(raw))
        except InvalidReference as exc:
            parsed.append(Malformed(str(raw), str(exc)))
    return tuple(parsed)


def resolve_arguments(arguments: Sequence[Argument], binder: ArgumentBinder[T]) -> list[T]:
    """Turn a step's parsed arguments into back-end values, in order, one per argument.

    Raises :class:`InvalidReference` on a malformed one (a validated step has none)."""
    resolved: list[T] = []
    for token in arguments:
        match token:
            case Literal(value):
                resolved.append(binder.literal(value))
            case ParamRef(name):
                resolved.append(binder.parameter(name))
            case InputRef(step, output):
                resolved.append(binder.step_input(step, output))
            case OutputRef(name):
                resolved.append(binder.step_output(name))
            case Malformed(_, message):
                raise InvalidReference(message)
            case _:
                raise _unparsed(token)
    return resolved


def _unparsed(value: object) -> TypeError:
    return TypeError(f"{value!r} is not a parsed argument: pass a step's `arguments`, not `args`")


def step_inputs(arguments: Sequence[Argument]) -> list[InputRef]:
    """Upstream outputs a step reads, in argument order, without duplicates (malformed skipped)."""
    seen: dict[InputRef, None] = {}
    for token in arguments:
        if isinstance(token, InputRef):
            seen.setdefault(token, None)
        elif not isinstance(token, Literal | ParamRef | OutputRef | Malformed):
            raise _unparsed(token)
    return list(seen)
