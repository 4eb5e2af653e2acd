"""Load `pipeline_defs/` into validated specs, reporting every problem with file, key path and line.

YAML is read with ruamel's round-trip loader because it keeps the line of every key and item; the
plain data is then validated by pydantic (structure) and :mod:`infra.definitions.validate`
(meaning). Parts that are structurally sound are still checked for meaning when other parts
are not, so one run reports all problems in a file.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from infra.definitions.errors import KeyPath, SpecError, SpecErrors
from infra.definitions.model import (
    AZURE_NAME_PATTERN,
    IDENTIFIER_PATTERN,
    Parameter,
    PipelineSpec,
    Schedule,
    Step,
)
from infra.definitions.validate import KnownNames, PartialSpec, validate_partial

PIPELINE_FILE = "pipeline.yaml"
_STEP_TAGS = {"python", "r", "command"}
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)
_NAME_RULES = {
    AZURE_NAME_PATTERN: "use 1-64 letters, digits, '-' or '_', starting with a letter or digit",
    IDENTIFIER_PATTERN: "use 1-64 letters, digits or '_', starting with a letter",
}


@dataclass(frozen=True)
class LoadedPipeline:
    """A valid pipeline definition and where it lives."""

    spec: PipelineSpec
    file: Path
    """The `pipeline.yaml` file."""

    @property
    def folder(self) -> Path:
        """The pipeline folder; step code folders are relative to it."""
        return self.file.parent


@dataclass(frozen=True)
class DefinitionSet:
    """Result of loading definitions: the valid pipelines and every problem found."""

    pipelines: tuple[LoadedPipeline, ...]
    errors: tuple[SpecError, ...]

    def raise_if_invalid(self) -> tuple[LoadedPipeline, ...]:
        """Return the pipelines, or raise :class:`SpecErrors` with all problems."""
        if self.errors:
            raise SpecErrors(list(self.errors))
        return self.pipelines

    def by_name(self, name: str) -> LoadedPipeline:
        """The pipeline called `name` (KeyError listing the known names when absent)."""
        for pipeline in self.pipelines:
            if pipeline.spec.name == name:
                return pipeline
        known = ", ".join(sorted(p.spec.name for p in self.pipelines)) or "none"
        raise KeyError(f"no pipeline named {name!r} (known: {known})")


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding `Pulumi.yaml` or `.git` (else `start`)."""
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / "Pulumi.yaml").exists() or (folder / ".git").exists():
            return folder
    return start


def find_pipeline_files(path: Path) -> list[Path]:
    """`pipeline.yaml` files under `path` (a file, a pipeline folder or a folder of them)."""
    if path.is_file():
        return [path]
    if (path / PIPELINE_FILE).is_file():
        return [path / PIPELINE_FILE]
    return sorted(p for p in path.glob(f"*/{PIPELINE_FILE}") if p.is_file())


def display_path(path: Path) -> str:
    """A path as shown in messages: relative to the working directory when below it."""
    try:
        return os.path.relpath(path.resolve(), Path.cwd())
    except ValueError:
        return str(path)


def _line_of(root: Any, path: KeyPath) -> int | None:
    """1-based line of the deepest node of `path` present in the YAML tree."""
    node, line = root, None
    if isinstance(root, CommentedMap | CommentedSeq):
        line = root.lc.line + 1
    for part in path:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            # Missing key (e.g. "field required") or a union tag: stay on the parent's line.
            continue
    return line


def _plain(node: Any) -> Any:
    """ruamel round-trip nodes to plain Python values (scalar subclasses included)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    # Dates and timestamps: keep their ISO text (start_time is a string in the model).
    return node.isoformat() if hasattr(node, "isoformat") else str(node)


def _clean_loc(loc: tuple[Any, ...], data: Any) -> KeyPath:
    """Pydantic's error location as a key path: union tags and '[key]' markers removed."""
    path: list[str | int] = []
    node = data
    for part in loc:
        if part == "[key]":
            continue
        if (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        ):
            node = node[part]
        elif part in _STEP_TAGS and isinstance(node, dict) and node.get("kind") == part:
            continue
        else:
            node = None
        path.append(part)
    return tuple(path)


def _pydantic_message(error: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind == "union_tag_invalid":
        return "unknown step kind: expected one of 'python', 'r', 'command'"
    if kind == "union_tag_not_found":
        return "step needs a 'kind': one of 'python', 'r', 'command'"
    if kind == "string_pattern_mismatch":
        rule = _NAME_RULES.get(error.get("ctx", {}).get("pattern", ""), msg)
        return f"invalid name {error.get('input')!r}: {rule}"
    return str(msg)


def _structural_errors(exc: ValidationError, data: Any, tree: Any, file: str) -> list[SpecError]:
    errors = []
    for error in exc.errors():
        path = _clean_loc(tuple(error["loc"]), data)
        errors.append(SpecError(file, _line_of(tree, path), path, _pydantic_message(error)))
    return errors


def _partial(data: dict[str, Any]) -> PartialSpec:
    """The structurally valid parts of a document, so meaning is checked despite other errors."""

    def valid(adapter: TypeAdapter[Any], value: Any) -> Any:
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            # Unknown keys are already reported; check the rest of the part as if they were absent.
            extra = {e["loc"][-1] for e in exc.errors() if e["type"] == "extra_forbidden"}
            if not extra or not isinstance(value, dict) or len(exc.errors()) != len(extra):
                return None
            try:
                return adapter.validate_python({k: v for k, v in value.items() if k not in extra})
            except ValidationError:
                return None

    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    raw_schedules = data.get("schedules") if isinstance(data.get("schedules"), list) else []
    raw_params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    factory = data.get("data_factory")
    factory = factory if isinstance(factory, dict) else {}
    raw_triggers = factory.get("triggers") if isinstance(factory.get("triggers"), list) else []
    param_adapter: TypeAdapter[Parameter] = TypeAdapter(Parameter)
    schedule_adapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)
    return PartialSpec(
        steps=[valid(_STEP_ADAPTER, s) for s in raw_steps or []],
        step_names=[s.get("name") if isinstance(s, dict) else None for s in raw_steps or []],
        schedules=[valid(schedule_adapter, s) for s in raw_schedules or []],
        parameters={k: valid(param_adapter, v) for k, v in (raw_params or {}).items()},
        compute=data.get("compute") if isinstance(data.get("compute"), str) else None,
        image=data.get("image", "training") if isinstance(data.get("image", ""), str) else None,
        triggers=[valid(schedule_adapter, t) for t in raw_triggers or []],
    )


def load_pipeline(
    file: Path, repo_root: Path, known: KnownNames | None = None
) -> tuple[LoadedPipeline | None, list[SpecError]]:
    """Load and validate one `pipeline.yaml`; return the pipeline (if valid) and its problems."""
    shown = display_path(file)
    try:
        tree = YAML(typ="rt").load(file.read_text(encoding="utf-8"))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        return None, [SpecError(shown, line, (), f"YAML syntax error: {exc.problem or exc}")]
    except (YAMLError, UnicodeDecodeError, OSError) as exc:
        return None, [SpecError(shown, None, (), f"cannot read definition: {exc}")]
    if not isinstance(tree, dict):
        return None, [SpecError(shown, 1, (), "a pipeline definition must be a YAML mapping")]
    data = _plain(tree)

    errors: list[SpecError] = []
    spec: PipelineSpec | None = None
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        errors += _structural_errors(exc, data, tree, shown)
    for problem in validate_partial(_partial(data), file.parent, repo_root, known):
        errors.append(SpecError(shown, _line_of(tree, problem.path), problem.path, problem.message))
    if spec is None or errors:
        return None, sorted(errors, key=lambda e: e.line or 0)
    return LoadedPipeline(spec=spec, file=file), []


def load_definitions(
    paths: Iterable[Path], repo_root: Path | None = None, known: KnownNames | None = None
) -> DefinitionSet:
    """Load every pipeline under `paths`; pipeline names must be unique across all of them."""
    files: list[Path] = []
    errors: list[SpecError] = []
    for path in paths:
        if not path.exists():
            errors.append(SpecError(display_path(path), None, (), "no such file or folder"))
            continue
        found = find_pipeline_files(path)
        if not found:
            errors.append(
                SpecError(display_path(path), None, (), f"no {PIPELINE_FILE} found in this folder")
            )
        files += [f for f in found if f.resolve() not in {x.resolve() for x in files}]
    root = repo_root or find_repo_root(files[0].parent if files else Path.cwd())
    pipelines: list[LoadedPipeline] = []
    first_file_of: dict[str, LoadedPipeline] = {}
    for file in files:
        pipeline, problems = load_pipeline(file, root, known)
        errors += problems
        if pipeline is None:
            continue
        name = pipeline.spec.name
        if name in first_file_of:
            tree = YAML(typ="rt").load(file.read_text(encoding="utf-8"))
            errors.append(
                SpecError(
                    display_path(file),
                    _line_of(tree, ("name",)),
                    ("name",),
                    f"duplicate pipeline name {name!r}: already defined in "
                    f"{display_path(first_file_of[name].file)}",
                )
            )
            continue
        first_file_of[name] = pipeline
        pipelines.append(pipeline)
    return DefinitionSet(tuple(pipelines), tuple(errors))
