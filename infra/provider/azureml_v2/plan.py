"""What Azure ML v2 gets for a pipeline definition, as plain data (no azure-ai-ml here).

A definition becomes one *pipeline component* whose nodes are *command components*, one per step:

- a Python step runs ``python <script> <args>``, an R step ``Rscript <script> <args>``, a command
  step its argv, each in its code folder (the component's ``code``), like v1 and the local runner;
- ``${{parameters.X}}`` is a component input ``X`` bound to the pipeline input ``X`` (typed, with
  the default); ``${{steps.S.outputs.O}}`` is a ``uri_folder`` input ``S_O`` bound to node ``S``'s
  output ``O``; ``${{outputs.O}}`` is the component's ``uri_folder`` output ``O``;
- ``after: [S]`` (ordering without data) binds one of ``S``'s outputs as an extra input
  ``after_S`` that the command does not read: v2 orders nodes through data only.

v2 runs the command through a shell after substituting ``${{inputs.X}}`` textually, whereas v1
and the local runner pass an argv. So every literal is shell-quoted and every placeholder sits in
single quotes: a value then reaches the script as exactly one argument, as before. What this
cannot carry (a string parameter value holding a single quote, text Azure ML would parse as a
placeholder) is reported by :func:`v2_problems`, located, before any resource exists.

Versions are content hashes (the definitions core's step and pipeline digests plus the image
references), so an unchanged definition maps to existing versions and a changed script to exactly
one new step component and one new pipeline component.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.definitions.command import DEFAULT_INTERPRETERS, step_command
from infra.definitions.errors import KeyPath, SpecError
from infra.definitions.hashing import StepDigest, canonical_json, pipeline_digest, step_digests
from infra.definitions.loader import LoadedPipeline, display_path, line_of
from infra.definitions.model import (
    AnyStep,
    CommandStep,
    ParameterType,
    ParameterValue,
    Schedule,
)
from infra.definitions.recurrence import effective_recurrence
from infra.definitions.refs import InvalidReference, format_value, resolve_arguments

SCHEME = "amlpipe-v2/1"
"""Part of every version hash: bump it when the generated shape changes, so a new shape is a new
version rather than a silent change behind an existing one."""

VERSION_CHARS = 32
"""Hex characters of a content hash used as a component version (128 bits)."""

# Azure ML v2 name rules (azure-ai-ml 1.35.2): component names `^[a-z][a-z0-9_]*$`, node names
# lowercase identifiers, port names letters/digits/underscores and unique ignoring case, endpoint
# and deployment names 3-32 characters of letters, digits and '-', starting with a letter.
_NODE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_ENDPOINT_NAME = re.compile(r"^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
ENDPOINT_NAME_MAX = 32
# Azure ML substitutes these in a command before the shell sees it, even inside quotes.
_PLACEHOLDER_MARKERS = ("${{", "$[[")

PORT_TYPES: dict[ParameterType, str] = {
    ParameterType.STRING: "string",
    ParameterType.INT: "integer",
    ParameterType.FLOAT: "number",
    # A string input limited to the two words the definitions core's format_value gives a bool
    # (what v1 and the local runner pass): the scripts receive the same text everywhere.
    ParameterType.BOOL: "string",
}
BOOL_WORDS = (format_value(True), format_value(False))


@dataclass(frozen=True)
class Port:
    """An input of a command or pipeline component."""

    name: str
    type: str
    """'string', 'integer', 'number' or 'uri_folder'."""
    default: str | int | float | None = None
    enum: tuple[str, ...] = ()
    description: str = ""
    optional: bool = False


@dataclass(frozen=True)
class StepPlan:
    """One step as a command component plus its node in the pipeline component."""

    node: str
    """Node name in the pipeline component (the step name)."""
    component: str
    """Command component name (`<pipeline>__<step>`, lowercase)."""
    version: str
    description: str
    kind: str
    code: Path
    command: str
    inputs: tuple[Port, ...]
    outputs: tuple[str, ...]
    bindings: Mapping[str, str]
    """Component input name -> `${{parent.inputs.X}}` or `${{parent.jobs.S.outputs.O}}`."""
    compute: str
    image: str
    """Image key (resolved to a reference by the caller)."""
    environment_variables: Mapping[str, str] = field(default_factory=dict)
    deterministic: bool = True


@dataclass(frozen=True)
class PipelinePlan:
    """A whole definition as a v2 pipeline component."""

    name: str
    """The definition's name."""
    component: str
    """Pipeline component name (lowercase, '_' for '-')."""
    version: str
    description: str
    experiment: str
    inputs: tuple[Port, ...]
    steps: tuple[StepPlan, ...]
    images: Mapping[str, str]
    """Image key -> reference, as hashed into the versions."""
    tags: Mapping[str, str] = field(default_factory=dict)


class NotExpressible(ValueError):
    """A definition v2 cannot express; :func:`v2_problems` reports the same, located."""


def component_name(pipeline: str, step: str | None = None) -> str:
    """Component name of a pipeline (or of one of its steps): lowercase, '_' for '-'.

    Component names must match ``^[a-z][a-z0-9_]*$``; definition names may start with a digit,
    which gets a ``p_`` prefix.
    """
    base = pipeline.lower().replace("-", "_")
    if not base[:1].isalpha():
        base = "p_" + base
    return f"{base}__{step}" if step else base


def endpoint_name(pipeline: str, salt: str) -> str:
    """Batch endpoint name of a pipeline: stable, at most 32 characters, regionally unique.

    Batch endpoint names are unique per Azure region (they are DNS names), so two stacks, or two
    projects, in one region must not both claim ``churn-train``. ``salt`` (e.g. prefix, stack and
    subscription) goes into a short hash suffix; the readable part is the definition's name.
    """
    digest = hashlib.sha256(f"{salt}\0{pipeline}".encode()).hexdigest()[:8]
    readable = re.sub(r"[^a-zA-Z0-9-]+", "-", pipeline).strip("-")
    if not readable[:1].isalpha():
        readable = "p" + readable
    readable = readable[: ENDPOINT_NAME_MAX - len(digest) - 1].rstrip("-")
    return f"{readable}-{digest}"


def deployment_name(version: str) -> str:
    """Batch deployment name of a published pipeline version (a letter, then the hash)."""
    return "v" + version[:12]


def _hash(*parts: object) -> str:
    return hashlib.sha256(canonical_json([SCHEME, *parts]).encode()).hexdigest()[:VERSION_CHARS]


def _quote_placeholder(kind: str, name: str) -> str:
    # Single quotes: after substitution the shell passes the value as one argument, untouched.
    return f"'${{{{{kind}.{name}}}}}'"


def _entry_point(step: AnyStep) -> list[str]:
    """The interpreter (or command) of a step: the definitions core's rule, spelled as in the
    training image (`python`, `Rscript`), exactly as v1 runs it."""
    return step_command(step).argv(DEFAULT_INTERPRETERS)


def _port_default(kind: ParameterType, value: ParameterValue) -> str | int | float:
    if kind is ParameterType.BOOL:
        return BOOL_WORDS[0] if value else BOOL_WORDS[1]
    if kind is ParameterType.INT:
        return int(value)
    if kind is ParameterType.FLOAT:
        return float(value)
    return str(value)


def parameter_port(name: str, kind: ParameterType, default: ParameterValue, text: str) -> Port:
    """A pipeline (or component) input for a typed parameter."""
    return Port(
        name=name,
        type=PORT_TYPES[kind],
        default=_port_default(kind, default),
        enum=BOOL_WORDS if kind is ParameterType.BOOL else (),
        description=text,
    )


def port_value(kind: ParameterType, value: ParameterValue) -> str | int | float:
    """A parameter value as a v2 job input value (schedules, invocations)."""
    return _port_default(kind, value)


@dataclass
class _Binder:
    """The v2 half of the shared argument resolver: text for the shell command, and the ports
    each reference needs."""

    step: str
    loaded: LoadedPipeline
    inputs: dict[str, Port] = field(default_factory=dict)
    bindings: dict[str, str] = field(default_factory=dict)

    def literal(self, value: str) -> str:
        """A literal, quoted for the shell."""
        if any(marker in value for marker in _PLACEHOLDER_MARKERS):
            raise NotExpressible(f"argument {value!r} would be read as an Azure ML placeholder")
        return shlex.quote(value)

    def parameter(self, name: str) -> str:
        """A component input bound to the pipeline input of the same name."""
        p = self.loaded.spec.parameters[name]
        self.inputs[name] = parameter_port(name, p.type, p.default, p.description)
        self.bindings[name] = f"${{{{parent.inputs.{name}}}}}"
        return _quote_placeholder("inputs", name)

    def step_input(self, step: str, output: str) -> str:
        """A uri_folder input bound to an upstream node's output."""
        name = f"{step}_{output}"
        self.inputs[name] = Port(name=name, type="uri_folder")
        self.bindings[name] = f"${{{{parent.jobs.{step}.outputs.{output}}}}}"
        return _quote_placeholder("inputs", name)

    def step_output(self, name: str) -> str:
        """This component's own uri_folder output."""
        return _quote_placeholder("outputs", name)


def plan_pipeline(
    loaded: LoadedPipeline,
    images: Mapping[str, str],
    digests: Mapping[str, StepDigest] | None = None,
) -> PipelinePlan:
    """The v2 plan of a valid definition; `images` maps image keys to references (with digest).

    `digests` are the definition's step digests when the caller has them already (the program
    computes them once per pipeline: hashing step code is the costly part).
    Raises :class:`NotExpressible` for what v2 cannot carry (check :func:`v2_problems` first to
    get every problem, located).
    """
    spec = loaded.spec
    digests = digests if digests is not None else step_digests(loaded)
    used = sorted({spec.step_image(s) for s in spec.steps})
    missing = [key for key in used if key not in images]
    if missing:
        raise NotExpressible(f"pipeline {spec.name!r}: no image reference for {missing}")
    steps: list[StepPlan] = []
    for step in spec.steps:
        binder = _Binder(step.name, loaded)
        try:
            args = resolve_arguments(step.arguments, binder)
        except InvalidReference as exc:  # a validated spec has none; keep the message if not
            raise NotExpressible(f"step {step.name!r}: {exc}") from exc
        for other in step.after:
            upstream = spec.step(other)
            if not upstream.outputs:
                raise NotExpressible(
                    f"step {step.name!r}: 'after: {other}' needs an output of {other!r}"
                )
            name = f"after_{other}"
            binder.inputs[name] = Port(name=name, type="uri_folder")
            binder.bindings[name] = f"${{{{parent.jobs.{other}.outputs.{upstream.outputs[0]}}}}}"
        entry = [binder.literal(part) for part in _entry_point(step)]
        command = " ".join([*entry, *args])
        image_ref = images[spec.step_image(step)]
        inputs = tuple(binder.inputs[k] for k in sorted(binder.inputs))
        steps.append(
            StepPlan(
                node=step.name,
                component=component_name(spec.name, step.name),
                version=_hash(digests[step.name].digest, image_ref, command),
                description=step.description,
                kind=step.kind,
                code=(loaded.folder / step.code).resolve(),
                command=command,
                inputs=inputs,
                outputs=tuple(step.outputs),
                bindings=dict(sorted(binder.bindings.items())),
                compute=spec.step_compute(step),
                image=spec.step_image(step),
                environment_variables=dict(step.environment),
                deterministic=step.allow_reuse,
            )
        )
    pipeline_inputs = tuple(
        parameter_port(name, p.type, p.default, p.description)
        for name, p in spec.parameters.items()
    )
    return PipelinePlan(
        name=spec.name,
        component=component_name(spec.name),
        version=_hash(
            pipeline_digest(loaded, images, digests).digest, [(s.node, s.version) for s in steps]
        ),
        description=spec.description,
        experiment=spec.experiment,
        inputs=pipeline_inputs,
        steps=tuple(steps),
        images={key: images[key] for key in used},
        tags=dict(spec.tags),
    )


# -- schedules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerSpec:
    """A v2 schedule trigger as plain data: a cron expression as is (v2 takes cron), or a
    recurrence with its pattern. Both the azure-native Schedule and azure-ai-ml's JobSchedule
    are built from it, so they cannot disagree."""

    kind: str
    """'Cron' or 'Recurrence'."""
    time_zone: str
    expression: str = ""
    frequency: str = ""
    """'minute', 'hour', 'day', 'week' or 'month' (v2 spells them lowercase)."""
    interval: int = 1
    hours: tuple[int, ...] | None = None
    minutes: tuple[int, ...] | None = None
    week_days: tuple[str, ...] | None = None
    """Lowercase day names."""
    start_time: str | None = None


def trigger_spec(schedule: Schedule) -> TriggerSpec:
    """The v2 trigger of a `schedules:` entry.

    A cron fires only at its instants, and a recurrence with hours/minutes (or week days) only at
    its pattern's instants, so neither fires when it is created; a recurrence without a pattern
    needs `start_time` for that (:func:`v2_problems` says so, located).
    """
    if schedule.cron is not None:
        return TriggerSpec(
            kind="Cron", time_zone=schedule.effective_time_zone, expression=schedule.cron
        )
    rec = effective_recurrence(schedule)
    patterned = rec.hours is not None or rec.minutes is not None or rec.week_days is not None
    return TriggerSpec(
        kind="Recurrence",
        time_zone=schedule.effective_time_zone,
        frequency=rec.frequency.value.lower(),
        interval=rec.interval,
        hours=tuple(rec.hours if rec.hours is not None else [0]) if patterned else None,
        minutes=tuple(rec.minutes if rec.minutes is not None else [0]) if patterned else None,
        week_days=tuple(d.value.lower() for d in rec.week_days) if rec.week_days else None,
        start_time=rec.start_time,
    )


def fires_at_creation(schedule: Schedule) -> bool:
    """Whether v2 would start a run as soon as the schedule is created: a recurrence with no
    pattern and no start time starts counting (and fires) at creation."""
    trigger = trigger_spec(schedule)
    return trigger.kind == "Recurrence" and trigger.hours is None and trigger.start_time is None


# -- what v2 cannot express, located --------------------------------------------------------------


def _case_clashes(names: Iterable[str]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    clashes: list[tuple[str, str]] = []
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            clashes.append((name, other))
    return clashes


def _pipeline_problems(loaded: LoadedPipeline) -> list[tuple[KeyPath, str]]:
    spec = loaded.spec
    problems: list[tuple[KeyPath, str]] = []
    for a, b in _case_clashes(spec.parameters):
        problems.append(
            (
                ("parameters", a),
                f"parameters {a!r} and {b!r} differ only in case: Azure ML v2 input names "
                "ignore case",
            )
        )
    for name, p in spec.parameters.items():
        if p.type is ParameterType.STRING and "'" in str(p.default):
            problems.append(
                (
                    ("parameters", name, "default"),
                    "a string value holding a single quote cannot be passed through the v2 "
                    "command line as one argument",
                )
            )
    for index, schedule in enumerate(spec.schedules):
        for name, value in schedule.parameters.items():
            declared = spec.parameters.get(name)
            if declared and declared.type is ParameterType.STRING and "'" in str(value):
                problems.append(
                    (
                        ("schedules", index, "parameters", name),
                        "a string value holding a single quote cannot be passed through the v2 "
                        "command line as one argument",
                    )
                )
    for index, schedule in enumerate(spec.schedules):
        if fires_at_creation(schedule):
            problems.append(
                (
                    ("schedules", index, "recurrence"),
                    "a recurrence without hours/minutes fires as soon as it is created; give "
                    "recurrence.start_time (the first run) or hours and minutes",
                )
            )
    for index, step in enumerate(spec.steps):
        problems += _step_problems(loaded, index, step)
    return problems


def _step_problems(loaded: LoadedPipeline, index: int, step: AnyStep) -> list[tuple[KeyPath, str]]:
    spec = loaded.spec
    here: KeyPath = ("steps", index)
    problems: list[tuple[KeyPath, str]] = []
    if not _NODE_NAME.match(step.name):
        problems.append(
            (
                (*here, "name"),
                f"node names are lowercase: rename step {step.name!r} to "
                f"{step.name.lower()!r} (references to it too)",
            )
        )
    literal_parts: list[tuple[KeyPath, str]] = [
        ((*here, "args", i), a) for i, a in enumerate(step.args) if isinstance(a, str)
    ]
    if isinstance(step, CommandStep):
        literal_parts += [((*here, "command", i), part) for i, part in enumerate(step.command)]
    else:
        literal_parts.append(((*here, "script"), step.script))
    for path, text in literal_parts:
        if "$[[" in text or ("${{" in text and path[-2] != "args"):
            problems.append(
                (path, f"{text!r} would be read by Azure ML v2 as a placeholder in the command")
            )
    binder = _Binder(step.name, loaded)
    # Malformed references are reported by the definitions' own validation, placeholders by the
    # literal check above.
    with contextlib.suppress(InvalidReference, NotExpressible, KeyError):
        resolve_arguments(step.arguments, binder)
    ports = list(binder.inputs)
    for k, other in enumerate(step.after):
        try:
            upstream = spec.step(other)
        except KeyError:
            continue
        if not upstream.outputs:
            problems.append(
                (
                    (*here, "after", k),
                    f"steps are ordered through data only: {other!r} has no output "
                    f"{step.name!r} could wait for (add one to {other!r}, or read one of its "
                    "outputs)",
                )
            )
        ports.append(f"after_{other}")
    for a, b in _case_clashes(ports):
        problems.append(
            (
                (*here, "args"),
                f"inputs {a!r} and {b!r} of step {step.name!r} collide in Azure ML v2 (upstream "
                "outputs become inputs named <step>_<output>; input names ignore case)",
            )
        )
    for a, b in _case_clashes(step.outputs):
        problems.append(
            ((*here, "outputs"), f"outputs {a!r} and {b!r} differ only in case in Azure ML v2")
        )
    return problems


def v2_problems(definitions: Sequence[LoadedPipeline]) -> list[SpecError]:
    """Every reason Azure ML v2 cannot publish these (already valid) definitions, each with file,
    line and key path. Empty when all of them can be published."""
    errors: list[SpecError] = []
    components: dict[str, LoadedPipeline] = {}
    for loaded in definitions:
        found = _pipeline_problems(loaded)
        name = component_name(loaded.spec.name)
        first = components.setdefault(name, loaded)
        if first is not loaded:
            found.append(
                (
                    ("name",),
                    f"pipelines {loaded.spec.name!r} and {first.spec.name!r} map to the same "
                    f"Azure ML v2 component name {name!r} (names ignore case and '-' vs '_')",
                )
            )
        if not found:
            continue
        shown = display_path(loaded.file)
        errors += [
            SpecError(shown, line_of(loaded.file, path), path, f"Azure ML v2: {message}")
            for path, message in found
        ]
    return errors
