"""Stack config as the Pulumi CLI would hand it to the program, read from the repository's files.

Project defaults come from the `config:` block of Pulumi.yaml; a stack file's values override them.
Values are passed as the CLI passes them: strings as they are, everything else as JSON text.
`secure:` values (ciphertext only the CLI can decrypt) are replaced by fake plaintext.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

REPO_ROOT = Path(__file__).resolve().parents[2]
PROJECT_FILE = REPO_ROOT / "Pulumi.yaml"


def _load(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text(encoding="utf-8"))


def project() -> dict[str, Any]:
    """The parsed Pulumi.yaml."""
    return _load(PROJECT_FILE)


def project_name() -> str:
    return str(project()["name"])


def declared_keys() -> dict[str, dict[str, Any]]:
    """Project config declarations, key (without namespace) -> declaration."""
    declared = project().get("config") or {}
    return {k: (v if isinstance(v, dict) else {"default": v}) for k, v in declared.items()}


def stack_files() -> list[Path]:
    """Every Pulumi.<stack>.yaml next to Pulumi.yaml."""
    return sorted(REPO_ROOT.glob("Pulumi.*.yaml"))


def stack_name(path: Path) -> str:
    return path.name[len("Pulumi.") : -len(".yaml")]


def raw_value(value: Any) -> str:
    """A config value as the CLI passes it to a program."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def stack_config(path: Path) -> dict[str, str]:
    """Full config of a stack: 'namespace:key' -> raw value, project defaults applied."""
    namespace = project_name()
    config = {
        f"{namespace}:{key}": raw_value(decl["default"])
        for key, decl in declared_keys().items()
        if "default" in decl
    }
    stack = (_load(path) or {}).get("config") or {}
    for key, value in stack.items():
        full = key if ":" in key else f"{namespace}:{key}"
        config[full] = raw_value(_without_ciphertext(value, full))
    return config


def _without_ciphertext(value: Any, path: str) -> Any:
    """`value` with every `{secure: <ciphertext>}` (top level or nested, as `pulumi config set
    --path --secret` writes them) replaced by fake plaintext naming its path."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return f"fake-secret-for-{path}"
        return {k: _without_ciphertext(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_without_ciphertext(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def settings_raw(config: dict[str, str]) -> dict[str, str]:
    """The project-namespace part of a full config, keys without namespace."""
    prefix = project_name() + ":"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}
