"""Load `pipeline_defs/` into validated specs, reporting every problem with file, key path and line.

YAML is read by :mod:`infra.definitions.yamlsource` (libyaml events, bounded size, depth and alias
expansion, the line of every key and item); the plain data is then validated by pydantic
(structure) and :mod:`infra.definitions.validate` (meaning). Parts that are structurally sound
are still checked for meaning when other parts are not, so one run reports all problems in a file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter, ValidationError

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
from infra.definitions.yamlsource import YamlDocument, YamlProblem, load_yaml_file

PIPELINE_FILE = "pipeline.yaml"
_STEP_TAGS = {"python", "r", "command"}
_STEP_ADAPTER: TypeAdapter[Any] = TypeAdapter(Step)
_PARAMETER_ADAPTER: TypeAdapter[Parameter] = TypeAdapter(Parameter)
_SCHEDULE_ADAPTER: TypeAdapter[Schedule] = TypeAdapter(Schedule)
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
    ambiguous: frozenset[str] = frozenset()
    """Names defined by more than one file: never resolved to either of them."""

    def raise_if_invalid(self) -> tuple[LoadedPipeline, ...]:
        """Return the pipelines, or raise :class:`SpecErrors` with all problems."""
        if self.errors:
            raise SpecErrors(list(self.errors))
        return self.pipelines

    def by_name(self, name: str) -> LoadedPipeline:
        """The pipeline called `name` (KeyError listing the known names when absent)."""
        if name in self.ambiguous:
            raise KeyError(f"pipeline name {name!r} is defined by more than one file")
        for pipeline in self.pipelines:
            if pipeline.spec.name == name:
                return pipeline
        known = ", ".join(sorted(p.spec.name for p in self.pipelines)) or "none"
        raise KeyError(f"no pipeline named {name!r} (known: {known})")


def find_repo_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding `Pulumi.yaml` or `.git` (else `start`)."""
    return _marked_root(start) or start.resolve()


def _marked_root(start: Path) -> Path | None:
    start = _resolved(start)
    for folder in [start, *start.parents]:
        if (folder / "Pulumi.yaml").exists() or (folder / ".git").exists():
            return folder
    return None


def definitions_root(files: Sequence[Path]) -> Path:
    """The folder code folders must stay inside: the repository (nearest `Pulumi.yaml` or `.git`
    above the definitions) or, outside any repository, the definitions folder, i.e. the folder
    holding the pipeline folders (never one pipeline's own folder)."""
    if not files:
        return find_repo_root(Path.cwd())
    marked = _marked_root(files[0].parent)
    if marked is not None:
        return marked
    folders = [str(_resolved(f.parent).parent) for f in files]
    return Path(os.path.commonpath(folders))


def find_pipeline_files(path: Path) -> list[Path]:
    """`pipeline.yaml` entries under `path` (a file, a pipeline folder or a folder of them).

    Whatever is called `pipeline.yaml` is returned, folders and devices included: the loader says
    what is wrong with it rather than skipping it."""
    if not path.is_dir():
        return [path]
    if _present(path / PIPELINE_FILE):
        return [path / PIPELINE_FILE]
    with os.scandir(path) as entries:  # OSError (e.g. unreadable folder): the caller reports it
        folders = sorted(e.path for e in entries if e.is_dir())
    return [Path(f) / PIPELINE_FILE for f in folders if _present(Path(f) / PIPELINE_FILE)]


def _present(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _resolved(path: Path) -> Path:
    """`path.resolve()`, or its absolute form where it cannot be resolved (loop, NUL, too long)."""
    try:
        return path.resolve()
    except (OSError, ValueError, RuntimeError):
        return Path(os.path.abspath(path))


def display_path(path: Path) -> str:
    """A path as shown in messages: relative to the working directory, links not followed (a
    `pipeline.yaml` that links to a device is named as the user's file, not the device)."""
    try:
        return os.path.relpath(os.path.abspath(path), os.getcwd())
    except (OSError, ValueError):
        # Unresolvable (NUL byte, link loop, too long, cwd gone): show it as given, printable.
        return repr(str(path))[1:-1]


def line_of(file: Path, path: KeyPath) -> int | None:
    """Line of `path` in a definition file (its deepest existing part; None if unreadable now)."""
    try:
        return load_yaml_file(file).line_of(path)
    except YamlProblem:
        return None


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


_TYPE_NAMES = {
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    list: "list",
    dict: "mapping",
    type(None): "null",
}


def _got(value: Any) -> str:
    """What the user wrote, for 'expected X, got Y' messages (short)."""
    name = _TYPE_NAMES.get(type(value), type(value).__name__)
    if isinstance(value, dict | list):
        return name
    text = repr(value)
    return f"{name} {text if len(text) <= 40 else text[:37] + '...'}"


def _pydantic_message(error: Any) -> str:
    kind, msg = error["type"], error["msg"]
    if kind.endswith("_type") or kind in ("bool_parsing", "int_parsing", "float_parsing"):
        # Strict types: say what was written, so `interval: true` and `'2'` read as what they are.
        return f"{msg.split(',')[0]}, got {_got(error.get('input'))}"
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


def _structural_errors(exc: ValidationError, doc: YamlDocument, file: str) -> list[SpecError]:
    errors = []
    for error in exc.errors():
        path = _clean_loc(tuple(error["loc"]), doc.data)
        errors.append(SpecError(file, doc.line_of(path), path, _pydantic_message(error)))
    return errors


def _partial(data: dict[str, Any]) -> PartialSpec:
    """The structurally valid parts of a document, so meaning is checked despite other errors."""

    def valid(adapter: TypeAdapter[Any], value: Any) -> Any:
        try:
            return adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            # Unknown keys are already reported; check the rest of the part as if they were absent.
            extra = {e["loc"][-1] for e in exc.errors() if e["type"] == "extra_forbidden"}
            if not extra or not isinstance(value, dict) or len(exc.errors()) != len(extra):
                return None
            try:
                kept = {k: v for k, v in value.items() if k not in extra}
                return adapter.validate_python(kept, strict=True)
            except ValidationError:
                return None

    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    raw_schedules = data.get("schedules") if isinstance(data.get("schedules"), list) else []
    raw_params = data.get("parameters") if isinstance(data.get("parameters"), dict) else {}
    factory = data.get("data_factory")
    factory = factory if isinstance(factory, dict) else {}
    raw_triggers = factory.get("triggers") if isinstance(factory.get("triggers"), list) else []
    return PartialSpec(
        steps=[valid(_STEP_ADAPTER, s) for s in raw_steps or []],
        step_names=[s.get("name") if isinstance(s, dict) else None for s in raw_steps or []],
        schedules=[valid(_SCHEDULE_ADAPTER, s) for s in raw_schedules or []],
        parameters={k: valid(_PARAMETER_ADAPTER, v) for k, v in (raw_params or {}).items()},
        compute=data.get("compute") if isinstance(data.get("compute"), str) else None,
        image=data.get("image", "training") if isinstance(data.get("image", ""), str) else None,
        triggers=[valid(_SCHEDULE_ADAPTER, t) for t in raw_triggers or []],
    )


def load_pipeline(
    file: Path, repo_root: Path, known: KnownNames | None = None
) -> tuple[LoadedPipeline | None, list[SpecError]]:
    """Load and validate one `pipeline.yaml`; return the pipeline (if valid) and its problems."""
    shown = display_path(file)
    try:
        doc = load_yaml_file(file)
    except YamlProblem as unreadable:
        return None, [SpecError(shown, unreadable.line, unreadable.path, unreadable.message)]
    if not isinstance(doc.data, dict):
        return None, [SpecError(shown, 1, (), "a pipeline definition must be a YAML mapping")]
    data: dict[str, Any] = doc.data

    errors: list[SpecError] = []
    spec: PipelineSpec | None = None
    try:
        # Strict: what the file says is what it means (no 'true' -> 1, no '2' -> 2).
        spec = PipelineSpec.model_validate(data, strict=True)
    except ValidationError as exc:
        errors += _structural_errors(exc, doc, shown)
    for problem in validate_partial(_partial(data), file.parent, repo_root, known):
        errors.append(SpecError(shown, doc.line_of(problem.path), problem.path, problem.message))
    if spec is None or errors:
        return None, sorted(errors, key=lambda e: e.line or 0)
    return LoadedPipeline(spec=spec, file=file), []


def _missing_reason(path: Path) -> str:
    try:
        os.stat(path)
    except ValueError:
        return "not a valid path (it contains a NUL byte)"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "name too long for the file system"
        if exc.errno == errno.ELOOP:
            return "symbolic link loop"
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            return f"cannot read: {exc.strerror}"
    return "no such file or folder"


def load_definitions(
    paths: Iterable[Path], repo_root: Path | None = None, known: KnownNames | None = None
) -> DefinitionSet:
    """Load every pipeline under `paths`; pipeline names must be unique across all of them."""
    files: list[Path] = []
    seen: set[Path] = set()
    errors: list[SpecError] = []
    for path in paths:
        if not _present(path):
            errors.append(SpecError(display_path(path), None, (), _missing_reason(path)))
            continue
        try:
            found = find_pipeline_files(path)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            errors.append(SpecError(display_path(path), None, (), f"cannot read folder: {reason}"))
            continue
        if not found:
            errors.append(
                SpecError(display_path(path), None, (), f"no {PIPELINE_FILE} found in this folder")
            )
        for file in found:
            if _resolved(file) not in seen:
                seen.add(_resolved(file))
                files.append(file)
    root = repo_root or definitions_root(files)
    pipelines: list[LoadedPipeline] = []
    first_file_of: dict[str, LoadedPipeline] = {}
    ambiguous: set[str] = set()
    for file in files:
        pipeline, problems = load_pipeline(file, root, known)
        errors += problems
        if pipeline is None:
            continue
        name = pipeline.spec.name
        if name in first_file_of:
            errors.append(
                SpecError(
                    display_path(file),
                    line_of(file, ("name",)),
                    ("name",),
                    f"duplicate pipeline name {name!r}: already defined in "
                    f"{display_path(first_file_of[name].file)}",
                )
            )
            ambiguous.add(name)
            continue
        first_file_of[name] = pipeline
        pipelines.append(pipeline)
    return DefinitionSet(tuple(pipelines), tuple(errors), frozenset(ambiguous))
