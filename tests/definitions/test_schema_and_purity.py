"""The exported JSON Schema is current and accepts the samples; the core stays pure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
from ruamel.yaml import YAML

from infra.definitions.schema import SCHEMA_FILE, render_schema

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_not_stale() -> None:
    committed = (REPO_ROOT / "pipeline_defs" / SCHEMA_FILE).read_text()

    assert committed == render_schema(), "run `amlpipe schema` and commit the result"


def test_sample_definitions_satisfy_the_schema_and_name_it() -> None:
    schema = json.loads(render_schema())
    samples = sorted((REPO_ROOT / "pipeline_defs").glob("*/pipeline.yaml"))
    assert samples, "no sample pipelines found"
    for sample in samples:
        text = sample.read_text()
        assert text.startswith("# yaml-language-server: $schema=../pipeline.schema.json")
        jsonschema.validate(YAML(typ="safe").load(text), schema)


def test_schema_rejects_an_unknown_key() -> None:
    schema = json.loads(render_schema())
    doc = {"name": "p", "experiment": "e", "compute": "c", "steps": [], "colour": "blue"}

    try:
        jsonschema.validate(doc, schema)
    except jsonschema.ValidationError as exc:
        assert "colour" in exc.message
    else:
        raise AssertionError("schema accepted an unknown key")


def test_spec_core_and_cli_import_neither_pulumi_nor_azureml() -> None:
    code = (
        "import sys, infra.definitions, infra.definitions.schema, infra.cli;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'azureml'));"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )

    assert result.stdout.strip() == ""
