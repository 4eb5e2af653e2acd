"""References resolve through one binder interface; the DAG follows them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from infra.definitions import load_definitions
from infra.definitions.graph import edges, find_cycle, to_dot, to_mermaid, topological_order
from infra.definitions.refs import (
    InputRef,
    InvalidReference,
    Literal,
    OutputRef,
    ParamRef,
    parse_argument,
    parse_arguments,
    resolve_arguments,
)


class RecordingBinder:
    """Renders tokens as tagged strings so the resolution order and kinds are visible."""

    def literal(self, value: str) -> str:
        return value

    def parameter(self, name: str) -> str:
        return f"<param {name}>"

    def step_input(self, step: str, output: str) -> str:
        return f"<input {step}.{output}>"

    def step_output(self, name: str) -> str:
        return f"<output {name}>"


def test_each_reference_kind_is_parsed() -> None:
    assert parse_argument("${{ parameters.rows }}") == ParamRef("rows")
    assert parse_argument("${{steps.prep.outputs.data}}") == InputRef("prep", "data")
    assert parse_argument("${{outputs.model}}") == OutputRef("model")
    assert parse_argument("--rows") == Literal("--rows")
    assert parse_argument(3) == Literal("3")
    assert parse_argument(True) == Literal("True")  # as Azure ML passes a bool


@pytest.mark.parametrize("bad", ["x${{outputs.a}}", "${{outputs.a}}${{outputs.b}}", "${{foo}}"])
def test_malformed_references_are_rejected(bad: str) -> None:
    with pytest.raises(InvalidReference):
        parse_argument(bad)


def test_resolver_keeps_order_and_maps_every_token() -> None:
    args: list[str | int | float | bool] = [
        "--rows",
        "${{parameters.rows}}",
        "--in",
        "${{steps.prep.outputs.data}}",
        "--out",
        "${{outputs.model}}",
        0.5,
    ]

    resolved = resolve_arguments(parse_arguments(args), RecordingBinder())

    assert resolved == [
        "--rows",
        "<param rows>",
        "--in",
        "<input prep.data>",
        "--out",
        "<output model>",
        "0.5",
    ]


BRANCHES = """\
name: branches
experiment: e
compute: cpu-cluster
steps:
  - {name: prep, kind: python, code: s, script: a.py, outputs: [d], args: ['${{outputs.d}}']}
  - {name: left, kind: python, code: s, script: a.py, outputs: [l],
     args: ['${{steps.prep.outputs.d}}', '${{outputs.l}}']}
  - {name: right, kind: python, code: s, script: a.py, after: [prep]}
  - {name: join, kind: python, code: s, script: a.py,
     args: ['${{steps.left.outputs.l}}'], after: [right]}
"""


def test_dag_edges_order_and_drawings(make_repo: Callable[..., Path]) -> None:
    folder = make_repo(BRANCHES, files={"s/a.py": "pass\n"})
    spec = load_definitions([folder]).raise_if_invalid()[0].spec

    assert [(e.upstream, e.downstream, e.output) for e in edges(spec)] == [
        ("prep", "left", "d"),
        ("prep", "right", None),
        ("left", "join", "l"),
        ("right", "join", None),
    ]
    assert topological_order(spec) == ["prep", "left", "right", "join"]
    mermaid = to_mermaid(spec)
    assert mermaid.startswith("flowchart LR\n")
    assert "prep -- d --> left" in mermaid and "right -.-> join" in mermaid
    assert '"left" -> "join" [label="l"];' in to_dot(spec)


def test_find_cycle_names_the_steps_in_order() -> None:
    assert find_cycle({"a": {"c"}, "b": {"a"}, "c": {"b"}}) in (
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
    )
    assert find_cycle({"a": set(), "b": {"a"}}) is None


def test_arguments_are_parsed_when_the_step_is_built_and_never_again(
    make_repo: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from infra.components.pipelines import step_summaries
    from infra.definitions import refs
    from infra.definitions.graph import upstream_of
    from infra.runner.plan import RunLayout, plan_step

    folder = make_repo(BRANCHES, files={"s/a.py": "pass\n"})
    loaded = load_definitions([folder]).raise_if_invalid()[0]

    def parse_again(value: object) -> refs.Token:
        raise AssertionError(f"argument {value!r} parsed again")

    monkeypatch.setattr(refs, "parse_argument", parse_again)
    spec = loaded.spec
    assert upstream_of(spec)["join"] == {"left", "right"}
    assert len(edges(spec)) == 4
    assert step_summaries(spec, dict.fromkeys(["prep", "left", "right", "join"], "0" * 64))
    plan = plan_step(
        loaded,
        spec.step("left"),
        RunLayout(tmp_path / "run"),
        {},
        in_container=True,
        interpreters={"python": "python", "r": "Rscript"},
    )
    assert plan.argv[-2:] == ["/amlpipe/inputs/prep/d", "/amlpipe/outputs/l"]


def test_a_malformed_reference_is_kept_with_its_reason_until_validation_reports_it() -> None:
    from infra.definitions.model import PythonStep
    from infra.definitions.refs import Malformed

    step = PythonStep(
        kind="python", name="s", code=".", script="a.py", args=["--x", "${{ parameters.}}"]
    )

    assert step.arguments[0] == Literal("--x")
    assert isinstance(step.arguments[1], Malformed)
    with pytest.raises(InvalidReference, match="unknown reference"):
        resolve_arguments(step.arguments, RecordingBinder())
