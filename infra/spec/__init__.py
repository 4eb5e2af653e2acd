"""The spec core: pipeline definitions as validated, hashed plain data.

Imports neither pulumi nor azureml (a test checks it), so the CLI, the local runner, the Pulumi
program and the dynamic provider can all build on it cheaply.
"""

from infra.spec.errors import SpecError, SpecErrors
from infra.spec.hashing import (
    PipelineDigest,
    StepDigest,
    TreeDigest,
    build_context_tag,
    pipeline_digest,
    tree_digest,
)
from infra.spec.loader import (
    DefinitionSet,
    LoadedPipeline,
    find_repo_root,
    load_definitions,
    load_pipeline,
)
from infra.spec.model import PipelineSpec
from infra.spec.validate import KnownNames

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
