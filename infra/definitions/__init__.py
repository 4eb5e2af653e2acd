"""The spec core: pipeline definitions as validated, hashed plain data.

Imports neither pulumi nor azureml (a test checks it), so the CLI, the local runner, the Pulumi
program and the dynamic provider can all build on it cheaply.
"""

from infra.definitions.errors import SpecError, SpecErrors
from infra.definitions.hashing import (
    PipelineDigest,
    StepDigest,
    TreeDigest,
    build_context_tag,
    pipeline_digest,
    tree_digest,
)
from infra.definitions.loader import (
    DefinitionSet,
    LoadedPipeline,
    find_repo_root,
    load_definitions,
    load_pipeline,
)
from infra.definitions.model import PipelineSpec
from infra.definitions.validate import KnownNames

__all__ = [
    "DefinitionSet",
    "KnownNames",
    "LoadedPipeline",
    "PipelineDigest",
    "PipelineSpec",
    "SpecError",
    "SpecErrors",
    "StepDigest",
    "TreeDigest",
    "build_context_tag",
    "find_repo_root",
    "load_definitions",
    "load_pipeline",
    "pipeline_digest",
    "tree_digest",
]
