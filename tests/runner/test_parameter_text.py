"""One meaning for a parameter value: a step gets byte-identical arguments from a local run and
from Azure ML v1, whose text is made by the real azureml SDK (its REST models and serializer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from infra.definitions.loader import load_definitions
from infra.definitions.refs import Literal, format_value, parse_argument
from infra.runner.params import resolve_parameters
from infra.runner.plan import RunLayout, plan_step

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
parameters:
  flag: {type: bool, default: true}
  count: {type: int, default: 7}
  ratio: {type: float, default: 0.00001}
  label: {type: string, default: 'a b'}
steps:
  - name: show
    kind: command
    code: code
    command: [echo]
    args: ['${{parameters.flag}}', '${{parameters.count}}', '${{parameters.ratio}}',
           '${{parameters.label}}']
"""
VALUES: list[bool | int | float | str] = [True, False, 0, 7, -3, 0.1, 1e-05, 2.5e20, "a b", ""]


def sdk_default_text(value: Any) -> str:
    """What a published pipeline stores as a parameter's default (REST body, msrest)."""
    from azureml.pipeline.core._aeva_provider import _AevaGraphProvider
    from azureml.pipeline.core._restclients.aeva import models
    from azureml.pipeline.core.graph import PipelineParameter
    from msrest import Serializer

    graph = type("G", (), {"params": {"p": PipelineParameter("p", value)}})()
    interface = _AevaGraphProvider._get_graph_interface(graph)
    client_models = {k: v for k, v in models.__dict__.items() if isinstance(v, type)}
    body = Serializer(client_models).body(interface, "EntityInterface")
    (parameter,) = body["Parameters"]
    return str(parameter["DefaultValue"])


def sdk_run_text(value: Any) -> str:
    """What a pipeline run (submit, schedule, endpoint) sends as the value of a parameter."""
    from azureml.pipeline.core._aeva_provider import _AevaGraphProvider

    assignments, _ = _AevaGraphProvider._get_parameter_assignments({"p": value})
    return str(assignments["p"])


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_the_one_rule_is_what_the_sdk_sends(value: bool | int | float | str) -> None:
    assert format_value(value) == sdk_run_text(value) == sdk_default_text(value)


def test_a_local_run_passes_defaults_and_overrides_as_azure_ml_does(tmp_path: Path) -> None:
    folder = tmp_path / "defs" / "demo"
    (folder / "code").mkdir(parents=True)
    (folder / "pipeline.yaml").write_text(PIPELINE)
    loaded = load_definitions([tmp_path / "defs"]).by_name("demo")
    step = loaded.spec.step("show")
    interpreters = {"python": "python", "r": "Rscript"}
    layout = RunLayout(tmp_path / "run")

    defaults = resolve_parameters(loaded.spec.parameters, [])
    plan = plan_step(loaded, step, layout, defaults, in_container=True, interpreters=interpreters)
    assert plan.argv[1:] == [sdk_default_text(p.default) for p in loaded.spec.parameters.values()]
    assert plan.argv[1:] == ["True", "7", "1e-05", "a b"]

    given = ["flag=false", "count=-3", "ratio=2.5e20", "label=x"]
    values = resolve_parameters(loaded.spec.parameters, given)
    plan = plan_step(loaded, step, layout, values, in_container=False, interpreters=interpreters)
    assert plan.argv[1:] == [sdk_run_text(v) for v in values.values()]
    assert plan.argv[1:] == ["False", "-3", "2.5e+20", "x"]


def test_literal_arguments_follow_the_same_rule() -> None:
    assert parse_argument(False) == Literal(sdk_run_text(False)) == Literal("False")
    assert parse_argument(0.5) == Literal(sdk_run_text(0.5))
