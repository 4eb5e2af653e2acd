"""Pipeline parameter values for a local run: `--param key=value` parsed and checked against the
declared parameter types, exactly the types a published pipeline's `PipelineParameter`s have."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from infra.definitions.model import Parameter, ParameterType, ParameterValue
from infra.definitions.validate import parse_parameter_text, value_matches
from infra.runner.errors import RunnerError


def parse_value(name: str, kind: ParameterType, text: str) -> ParameterValue:
    """Convert the command-line text of parameter `name` to its declared type."""
    try:
        # The core's strict reading: ASCII digits, 64-bit integers, finite floats.
        value = parse_parameter_text(kind, text)
    except ValueError as exc:
        raise RunnerError(
            f"--param {name}={text}: {text!r} is not a valid {kind.value} ({exc})",
            f"parameter {name!r} is declared as {kind.value}",
        ) from None
    # The same check the loader applies to defaults and schedule values.
    assert value_matches(kind, value)
    return value


def resolve_parameters(
    declared: Mapping[str, Parameter], overrides: Sequence[str]
) -> dict[str, ParameterValue]:
    """Defaults of every declared parameter, replaced by `key=value` overrides (typed, checked)."""
    values: dict[str, ParameterValue] = {name: p.default for name, p in declared.items()}
    seen: set[str] = set()
    for item in overrides:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RunnerError(f"--param {item!r}: expected KEY=VALUE")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise RunnerError(f"--param {item!r}: unknown parameter {name!r}", f"known: {known}")
        if name in seen:
            raise RunnerError(f"--param {name!r} given more than once")
        seen.add(name)
        values[name] = parse_value(name, declared[name].type, text)
    return values
