"""Stack configuration read from the repository's files, as the Pulumi CLI hands it to a program.

Project defaults come from the `config:` block of `Pulumi.yaml`; `Pulumi.<stack>.yaml` overrides
them. Values are strings as the CLI passes them (non-strings as JSON text). `secure:` values are
ciphertext only the CLI can decrypt: they are replaced by a placeholder naming their key, which is
enough for everything that reads stack files outside Pulumi (`amlpipe validate --stack`, tests).
No pulumi import: the CLI uses this.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.definitions.yamlsource import YamlProblem, load_yaml_file

PROJECT_FILE = "Pulumi.yaml"


class StackFileError(ValueError):
    """`Pulumi.yaml` or a stack file that cannot be read as YAML (file and line named)."""

    def __init__(self, file: Path, line: int | None, message: str) -> None:
        where = f"{file.name} line {line}" if line else file.name
        super().__init__(f"{where}: {message}")
        self.file = file
        self.line = line
        self.message = message


def _kind(path: Path) -> str:
    return "project file" if path.name == PROJECT_FILE else "stack file"


def _load(path: Path) -> Any:
    # The definitions' bounded YAML reader (libyaml events, YAML 1.2 scalars, no tags): the
    # program and every provider start read these files, and it is tens of times faster than a
    # general loader (bench/definition_parse.py).
    try:
        return load_yaml_file(path, _kind(path)).data
    except YamlProblem as exc:
        raise StackFileError(path, exc.line, exc.message) from None


def load_project(root: Path) -> dict[str, Any]:
    """The parsed `Pulumi.yaml`."""
    project: dict[str, Any] = _load(root / PROJECT_FILE)
    return project


def project_name(root: Path) -> str:
    """The project name declared in `Pulumi.yaml`."""
    return str(load_project(root)["name"])


def declared_keys(root: Path) -> dict[str, dict[str, Any]]:
    """Project config declarations: key (without namespace) -> declaration."""
    declared = load_project(root).get("config") or {}
    return {k: (v if isinstance(v, dict) else {"default": v}) for k, v in declared.items()}


def stack_files(root: Path) -> list[Path]:
    """Every `Pulumi.<stack>.yaml` next to `Pulumi.yaml`, sorted."""
    return sorted(root.glob("Pulumi.*.yaml"))


def stack_name(path: Path) -> str:
    """`dev` for `Pulumi.dev.yaml`."""
    return path.name[len("Pulumi.") : -len(".yaml")]


def stack_names(root: Path) -> list[str]:
    """The project's stacks: one per `Pulumi.<stack>.yaml` next to `Pulumi.yaml`. The settings
    refuse a stack whose resource names collide with another's (`parse_settings(other_stacks=)`);
    the program and `amlpipe validate --stack` both take the other stacks from here."""
    return [stack_name(path) for path in stack_files(root)]


def raw_value(value: Any) -> str:
    """A config value as the CLI passes it to a program."""
    return value if isinstance(value, str) else json.dumps(value)


def _without_ciphertext(value: Any, path: str) -> Any:
    """`value` with every `{secure: <ciphertext>}` (top level or nested, as `pulumi config set
    --path --secret` writes them) replaced by a placeholder naming its path."""
    if isinstance(value, dict):
        if set(value) == {"secure"}:
            return f"fake-secret-for-{path}"
        return {k: _without_ciphertext(v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_without_ciphertext(v, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def stack_config(root: Path, stack_file: Path) -> dict[str, str]:
    """Full config of a stack: 'namespace:key' -> raw value, project defaults applied."""
    namespace = project_name(root)
    config = {
        f"{namespace}:{key}": raw_value(decl["default"])
        for key, decl in declared_keys(root).items()
        if "default" in decl
    }
    stack = (_load(stack_file) or {}).get("config") or {}
    for key, value in stack.items():
        full = key if ":" in key else f"{namespace}:{key}"
        config[full] = raw_value(_without_ciphertext(value, full))
    return config


def settings_raw(root: Path, config: dict[str, str]) -> dict[str, str]:
    """The project-namespace part of a full config, keys without namespace."""
    prefix = project_name(root) + ":"
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def config_source(
    root: Path, stack_file: Path, path: tuple[str | int, ...]
) -> tuple[Path, int | None]:
    """Where the value at config key path `path` (key without namespace first, e.g.
    ``("dataFactory", "pipelines", 0)``) comes from: the stack file when it sets the key (as
    ``namespace:key`` or unqualified, as Pulumi accepts), else the project default in
    `Pulumi.yaml`; with the line of the deepest part of `path` written there (None when the file
    cannot be read now). Raises nothing: a location is a courtesy to the message."""
    key, rest = str(path[0]), path[1:]
    try:
        stack = load_yaml_file(stack_file, _kind(stack_file))
        config = (stack.data or {}).get("config") or {}
        for written in (f"{project_name(root)}:{key}", key):
            if isinstance(config, dict) and written in config:
                return stack_file, stack.line_of(("config", written, *rest))
        project = load_yaml_file(root / PROJECT_FILE, _kind(root / PROJECT_FILE))
        declared = ((project.data or {}).get("config") or {}).get(key)
        inner = ("default",) if isinstance(declared, dict) else ()
        return root / PROJECT_FILE, project.line_of(("config", key, *inner, *rest))
    except (YamlProblem, StackFileError, AttributeError, KeyError):
        return stack_file, None
