"""Stack config as the Pulumi CLI would hand it to the program, read from this repository's files.

A thin binding of :mod:`infra.stack_files` (shared with `amlpipe validate --stack`) to the
repository root, so tests name files only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra import stack_files as _files
from infra.stack_files import raw_value, stack_name

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = REPO_ROOT / _files.PROJECT_FILE

__all__ = [
    "PROJECT_FILE",
    "REPO_ROOT",
    "declared_keys",
    "project",
    "project_name",
    "raw_value",
    "settings_raw",
    "stack_config",
    "stack_files",
    "stack_name",
]


def project() -> dict[str, Any]:
    """The parsed Pulumi.yaml."""
    return _files.load_project(REPO_ROOT)


def project_name() -> str:
    return _files.project_name(REPO_ROOT)


def declared_keys() -> dict[str, dict[str, Any]]:
    """Project config declarations, key (without namespace) -> declaration."""
    return _files.declared_keys(REPO_ROOT)


def stack_files() -> list[Path]:
    """Every Pulumi.<stack>.yaml next to Pulumi.yaml."""
    return _files.stack_files(REPO_ROOT)


def stack_config(path: Path) -> dict[str, str]:
    """Full config of a stack: 'namespace:key' -> raw value, project defaults applied."""
    return _files.stack_config(REPO_ROOT, path)


def settings_raw(config: dict[str, str]) -> dict[str, str]:
    """The project-namespace part of a full config, keys without namespace."""
    return _files.settings_raw(REPO_ROOT, config)
