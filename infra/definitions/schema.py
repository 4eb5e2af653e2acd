"""JSON Schema of `pipeline.yaml`, exported to `pipeline_defs/pipeline.schema.json` for editors."""

from __future__ import annotations

import json
from typing import Any

from infra.definitions.model import PipelineSpec

SCHEMA_FILE = "pipeline.schema.json"


def pipeline_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline definition."""
    schema = PipelineSpec.model_json_schema(by_alias=True, mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Azure ML pipeline definition (azureml-pipelines)"
    return schema


def render_schema() -> str:
    """The schema as written to disk (stable formatting, trailing newline)."""
    return json.dumps(pipeline_schema(), indent=2, sort_keys=True) + "\n"
