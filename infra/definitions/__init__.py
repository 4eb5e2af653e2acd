"""The spec core: pipeline definitions as validated, hashed plain data.

Imports neither pulumi nor azureml (a test checks it), so the CLI, the local runner, the Pulumi
program and the dynamic provider can all build on it cheaply. The names below load their module
on first use (PEP 562), so importing one submodule (say the loader, for `amlpipe validate`) does
not also import the hashing code and its dependencies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_HOMES = {
    "SpecError": "errors",
    "SpecErrors": "errors",
    "PipelineDigest": "hashing",
    "StepDigest": "hashing",
    "TreeDigest": "hashing",
    "build_context_tag": "hashing",
    "pipeline_digest": "hashing",
    "tree_digest": "hashing",
    "DefinitionSet": "loader",
    "LoadedPipeline": "loader",
    "find_repo_root": "loader",
    "load_definitions": "loader",
    "load_pipeline": "loader",
    "PipelineSpec": "model",
    "KnownNames": "validate",
}

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


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
