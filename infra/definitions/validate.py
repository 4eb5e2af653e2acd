"""Meaning checks on a pipeline definition: references, the DAG, files on disk, schedules.

Works on the structurally valid parts of a document (:class:`PartialSpec`) so that a document with
a typo in one step still gets its other steps, cycles and schedules checked in the same run.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.definitions.codetree import code_tree_problems
from infra.definitions.errors import KeyPath, format_key_path
from infra.definitions.graph import dependencies, find_cycle
from infra.definitions.model import (
    AnyStep,
    CommandStep,
    Parameter,
    ParameterType,
    ParameterValue,
    Schedule,
    azure_output_name,
)
from infra.definitions.recurrence import (
    CronNotExpressible,
    cron_to_recurrence,
    recurrence_problems,
    time_zone_problem,
)
from infra.definitions.refs import InputRef, Malformed, OutputRef, ParamRef


@dataclass(frozen=True)
class Problem:
    """A problem located by key path inside one document."""

    path: KeyPath
    message: str


@dataclass(frozen=True)
class KnownNames:
    """Names a definition may refer to outside itself (from stack config); None = not checked."""

    computes: frozenset[str] | None = None
    images: frozenset[str] | None = None


@dataclass
class PartialSpec:
    """The structurally valid parts of a document (None where a part is invalid)."""

    steps: list[AnyStep | None]
    step_names: list[object]
    schedules: list[Schedule | None]
    parameters: dict[str, Parameter | None]
    compute: str | None
    image: str | None
    triggers: list[Schedule | None] = field(default_factory=list)
    """`data_factory.triggers`: schedules ADF runs, checked by the same rules as `schedules`."""


def value_matches(kind: ParameterType, value: ParameterValue) -> bool:
    """Whether `value` is a valid value for a parameter of type `kind` (YAML types, no coercion)."""
    if kind is ParameterType.BOOL:
        return isinstance(value, bool)
    if kind is ParameterType.INT:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is ParameterType.FLOAT:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


_INT_TEXT = re.compile(r"^[-+]?[0-9]{1,19}$", re.ASCII)
_FLOAT_TEXT = re.compile(
    r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,4})?$", re.ASCII
)
_BOOL_TEXT = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


def parse_parameter_text(kind: ParameterType, text: str) -> ParameterValue:
    """A parameter value given as text (`amlpipe run --param`), strictly: ASCII digits only
    (Python's int() would take '١٢٣' and '1_000'), 64-bit integers, finite floats (no 'nan' or
    'inf'), booleans true/false/yes/no/1/0. Raises ValueError saying what was wrong."""
    if kind is ParameterType.STRING:
        return text
    if kind is ParameterType.BOOL:
        if text.lower() in _BOOL_TEXT:
            return _BOOL_TEXT[text.lower()]
        raise ValueError("expected true or false")
    if kind is ParameterType.INT:
        if not _INT_TEXT.match(text) or not -(2**63) <= int(text) < 2**63:
            raise ValueError("expected a whole number (ASCII digits, 64-bit)")
        return int(text)
    if not _FLOAT_TEXT.match(text) or not math.isfinite(number := float(text)):
        raise ValueError("expected a finite number written with ASCII digits (no nan or inf)")
    return number


def _known(names: Sequence[str], what: str) -> str:
    return f"known {what}: {', '.join(sorted(names))}" if names else f"no {what} are defined"


def _check_names(spec: PartialSpec) -> Iterator[Problem]:
    first_index: dict[str, int] = {}
    for index, name in enumerate(spec.step_names):
        if not isinstance(name, str):
            continue
        if name in first_index:
            yield Problem(
                ("steps", index, "name"),
                f"duplicate step name {name!r} (also steps[{first_index[name]}])",
            )
        else:
            first_index[name] = index
    yield from _unique_schedule_names(spec.schedules, ("schedules",))
    yield from _unique_schedule_names(spec.triggers, TRIGGERS_PATH)


TRIGGERS_PATH: KeyPath = ("data_factory", "triggers")


def _unique_schedule_names(
    schedules: Sequence[Schedule | None], base: KeyPath
) -> Iterator[Problem]:
    seen: dict[str, int] = {}
    label = "trigger" if base == TRIGGERS_PATH else "schedule"
    for index, schedule in enumerate(schedules):
        if schedule is None:
            continue
        if schedule.name in seen:
            yield Problem(
                (*base, index, "name"),
                f"duplicate {label} name {schedule.name!r} "
                f"(also {format_key_path((*base, seen[schedule.name]))})",
            )
        else:
            seen[schedule.name] = index


def _inside(path: Path, folder: Path) -> bool:
    return os.path.commonpath([path, folder]) == str(folder)


def _shown(text: str) -> str:
    """A user-written path for a message: quoted, control characters escaped, long ones cut."""
    return repr(text) if len(text) <= 80 else repr(text[:60]) + f"... ({len(text)} characters)"


class _Unusable(Exception):
    """A path that cannot even be looked up (the reason is the message)."""


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except ValueError:
        raise _Unusable("contains a NUL byte") from None
    except RuntimeError:
        raise _Unusable("symbolic link loop") from None
    except OSError as exc:
        raise _Unusable(_os_reason(exc)) from None


def _os_reason(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "name too long for the file system"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop"
    return exc.strerror or str(exc)


def _kind_of(path: Path) -> str:
    """'dir', 'file', 'missing' or 'other'; raises _Unusable when it cannot be looked up."""
    try:
        mode = path.stat().st_mode
    except ValueError:
        raise _Unusable("contains a NUL byte") from None
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "missing"
        raise _Unusable(_os_reason(exc)) from None
    return "dir" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def _check_files(index: int, step: AnyStep, pipeline_dir: Path, root: Path) -> Iterator[Problem]:
    """Problems of a step's code folder and script; `root` is the resolved repository root."""
    where = ("steps", index, "code")
    try:
        code = _resolve(pipeline_dir / step.code)
        if not _inside(code, root):
            yield Problem(where, f"code folder {_shown(step.code)} escapes the repository ({root})")
            return
        kind = _kind_of(code)
    except _Unusable as exc:
        yield Problem(where, f"code folder {_shown(step.code)}: {exc}")
        return
    if kind != "dir":
        found = "not found" if kind == "missing" else "is not a folder"
        yield Problem(where, f"code folder {_shown(step.code)} {found} ({code})")
        return
    if not os.access(code, os.R_OK | os.X_OK):
        yield Problem(where, f"code folder {_shown(step.code)} cannot be read (permission denied)")
        return
    for problem in code_tree_problems(code):
        yield Problem(where, f"code folder {_shown(step.code)}: {problem}")
    if isinstance(step, CommandStep):
        return
    where = ("steps", index, "script")
    try:
        script = _resolve(code / step.script)
        if not _inside(script, code):
            yield Problem(where, f"script {_shown(step.script)} escapes its code folder")
            return
        kind = _kind_of(script)
    except _Unusable as exc:
        yield Problem(where, f"script {_shown(step.script)}: {exc}")
        return
    if kind != "file":
        yield Problem(
            where, f"script {_shown(step.script)} not found in code folder {_shown(step.code)}"
        )
    elif not os.access(script, os.R_OK):
        yield Problem(where, f"script {_shown(step.script)} cannot be read (permission denied)")


def _check_references(index: int, step: AnyStep, spec: PartialSpec) -> Iterator[Problem]:
    params = list(spec.parameters)
    steps_by_name = {s.name: s for s in spec.steps if s is not None}
    names = [n for n in spec.step_names if isinstance(n, str)]
    for arg_index, token in enumerate(step.arguments):
        where = ("steps", index, "args", arg_index)
        match token:
            case Malformed(_, message):
                yield Problem(where, message)
            case ParamRef(name) if name not in spec.parameters:
                yield Problem(where, f"unknown parameter {name!r} ({_known(params, 'parameters')})")
            case OutputRef(name) if name not in step.outputs:
                yield Problem(
                    where,
                    f"output {name!r} is not declared in this step's outputs "
                    f"({_known(step.outputs, 'outputs')})",
                )
            case InputRef(ref_step, _) if ref_step == step.name:
                yield Problem(where, "a step cannot read its own output; use ${{outputs.NAME}}")
            case InputRef(ref_step, _) if ref_step not in names:
                yield Problem(where, f"unknown step {ref_step!r} ({_known(names, 'steps')})")
            case InputRef(ref_step, output) if (
                ref_step in steps_by_name and output not in steps_by_name[ref_step].outputs
            ):
                declared = steps_by_name[ref_step].outputs
                yield Problem(
                    where,
                    f"step {ref_step!r} has no output {output!r} ({_known(declared, 'outputs')})",
                )
    for after_index, other in enumerate(step.after):
        where = ("steps", index, "after", after_index)
        if other == step.name:
            yield Problem(where, "a step cannot run after itself")
        elif other not in names:
            yield Problem(where, f"unknown step {other!r} ({_known(names, 'steps')})")
    if len(set(step.outputs)) != len(step.outputs):
        yield Problem(("steps", index, "outputs"), "duplicate output names")


def _unknown_target(
    path: KeyPath, kind: str, value: str | None, known: frozenset[str] | None, what: str
) -> Iterator[Problem]:
    if known is not None and value and value not in known:
        listing = ", ".join(sorted(known)) or "none"
        yield Problem(path, f"unknown {kind} {value!r} (known {what}: {listing})")


def target_problems(
    compute: str | None,
    image: str | None,
    steps: Sequence[AnyStep | None],
    known: KnownNames,
) -> list[Problem]:
    """Cluster and image names the stack does not provide: the pipeline defaults and each step's
    own choice (the one rule for `amlpipe validate --stack` and the Pulumi program)."""
    problems = list(_unknown_target(("compute",), "compute", compute, known.computes, "clusters"))
    problems += _unknown_target(("image",), "image", image, known.images, "images")
    for index, step in enumerate(steps):
        if step is not None:
            where = ("steps", index)
            problems += _unknown_target(
                (*where, "compute"), "compute", step.compute, known.computes, "clusters"
            )
            problems += _unknown_target(
                (*where, "image"), "image", step.image, known.images, "images"
            )
    return problems


def _check_dag(spec: PartialSpec) -> Iterator[Problem]:
    cycle = find_cycle(dependencies(spec.steps))
    if cycle:
        index = next(i for i, s in enumerate(spec.step_names) if s == cycle[0])
        yield Problem(("steps", index), "dependency cycle: " + " -> ".join([*cycle, cycle[0]]))


def _check_output_names(spec: PartialSpec) -> Iterator[Problem]:
    """Outputs whose Azure ML names (:func:`azure_output_name`) meet: the compile would fail."""
    first: dict[str, tuple[str, str, int]] = {}
    for index, step in enumerate(spec.steps):
        if step is None:
            continue
        for out_index, output in enumerate(step.outputs):
            name = azure_output_name(step.name, output)
            if name not in first:
                first[name] = (step.name, output, index)
                continue
            other_step, other_output, _ = first[name]
            if (other_step, other_output) == (step.name, output):
                continue  # a duplicate output of one step: reported as such
            yield Problem(
                ("steps", index, "outputs", out_index),
                f"output {output!r} of step {step.name!r} and output {other_output!r} of step "
                f"{other_step!r} both become {name!r} on Azure ML (step and output joined by "
                "'_'); rename one of them",
            )


def _check_parameters(spec: PartialSpec) -> Iterator[Problem]:
    for name, param in spec.parameters.items():
        if param is not None and not value_matches(param.type, param.default):
            yield Problem(
                ("parameters", name, "default"),
                f"default {param.default!r} is not a valid {param.type.value}",
            )


def _check_schedule(base: KeyPath, schedule: Schedule, spec: PartialSpec) -> Iterator[Problem]:
    if (schedule.recurrence is None) == (schedule.cron is None):
        which = "both" if schedule.cron is not None else "neither"
        yield Problem(base, f"a schedule needs exactly one of 'recurrence' or 'cron', got {which}")
    if message := time_zone_problem(schedule.time_zone):
        yield Problem((*base, "time_zone"), message)
    rec = schedule.recurrence
    if (
        rec is not None
        and rec.time_zone is not None
        and "time_zone" in schedule.model_fields_set
        and rec.time_zone != schedule.time_zone
    ):
        yield Problem(
            (*base, "recurrence", "time_zone"),
            f"time zone {rec.time_zone!r} conflicts with the schedule's time_zone "
            f"{schedule.time_zone!r}; give the zone once",
        )
    if schedule.recurrence is not None:
        for problem in recurrence_problems(schedule.recurrence):
            yield Problem(base + problem.path, problem.message)
    if schedule.cron is not None:
        try:
            cron_to_recurrence(schedule.cron, schedule.time_zone)
        except CronNotExpressible as exc:
            yield Problem((*base, "cron"), str(exc))
        except ValueError as exc:
            yield Problem((*base, "cron"), str(exc))
    for name, value in schedule.parameters.items():
        where = (*base, "parameters", name)
        if name not in spec.parameters:
            yield Problem(
                where, f"unknown parameter {name!r} ({_known(list(spec.parameters), 'parameters')})"
            )
            continue
        param = spec.parameters[name]
        if param is not None and not value_matches(param.type, value):
            yield Problem(where, f"value {value!r} is not a valid {param.type.value}")


def validate_partial(
    spec: PartialSpec, pipeline_dir: Path, repo_root: Path, known: KnownNames | None = None
) -> list[Problem]:
    """Every meaning problem of a document, in document order."""
    known = known or KnownNames()
    root = repo_root.resolve()  # once per document: every step's paths are checked against it
    problems = list(_check_names(spec))
    problems += _check_parameters(spec)
    problems += target_problems(spec.compute, spec.image, spec.steps, known)
    for index, step in enumerate(spec.steps):
        if step is None:
            continue
        problems += _check_files(index, step, pipeline_dir, root)
        problems += _check_references(index, step, spec)
    problems += _check_output_names(spec)
    problems += _check_dag(spec)
    for index, schedule in enumerate(spec.schedules):
        if schedule is not None:
            problems += _check_schedule(("schedules", index), schedule, spec)
    for index, trigger in enumerate(spec.triggers):
        if trigger is not None:
            problems += _check_schedule((*TRIGGERS_PATH, index), trigger, spec)
    return problems
