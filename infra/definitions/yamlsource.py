"""Read a definition file into plain data plus the line of every key and item, safely and fast.

Why not a YAML library's own loader: the round-trip loader we used cost ~60 ms per small file, and
no stock loader bounds what hostile input can do. Here the YAML *events* come from libyaml (PyYAML's
C parser, or its pure-Python parser where libyaml is missing), and one loop without recursion builds
the values, so:

- the file must be a regular file of at most :data:`MAX_FILE_BYTES` (checked before reading; parsing
  below that is linear);
- nesting deeper than :data:`MAX_DEPTH` is rejected (no `RecursionError`, however deep);
- an alias reuses the anchored value without copying, and the values reached through aliases are
  counted: more than :data:`MAX_ALIAS_VALUES` is rejected (an "alias bomb" stops at the first alias
  past the bound, in linear time);
- scalars follow the YAML 1.2 core schema (``yes``/``on`` stay strings), integers must fit in 64
  bits, floats must be finite (``.nan``, ``.inf``, ``1e999`` are rejected);
- tags other than the core ones (``!Ref``, ``!!python/...``, ``!!binary``), keys that are not
  strings (``null``, numbers, lists) and duplicate keys are errors, never dropped or converted;
- ``<<`` merge keys are honoured (explicit keys win), as the round-trip loader did.

Every problem is a :class:`YamlProblem` with the line and key path where it was found.
"""

from __future__ import annotations

import math
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.definitions.errors import KeyPath

MAX_FILE_BYTES = 1024 * 1024
"""Largest definition file accepted (1 MiB; a 1000-step pipeline takes about 150 KiB)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists accepted (definitions need fewer than 10 levels)."""
MAX_ALIAS_VALUES = 10_000
"""Most values a file may reach through aliases, counting every value inside an aliased node."""

_INT64 = 2**63
_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$", re.ASCII)
_OCT = re.compile(r"^0o[0-7]+$", re.ASCII)
_HEX = re.compile(r"^0x[0-9a-fA-F]+$", re.ASCII)
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$", re.ASCII)
_SPECIAL_FLOAT = re.compile(r"^(?:[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$")
_CORE = "tag:yaml.org,2002:"
_MERGE = "<<"

try:  # libyaml: the C parser, many times faster than PyYAML's Python one
    from yaml.cyaml import CParser

    _Parser: Any = CParser
except ImportError:  # pragma: no cover - PyYAML built without libyaml
    _Parser = yaml.SafeLoader


class YamlProblem(Exception):
    """Why a definition file cannot be read, located by line (None: the whole file) and key path."""

    def __init__(self, line: int | None, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.path = path
        self.message = message


@dataclass
class YamlDocument:
    """Plain data (dict/list/str/int/float/bool/None) and the 1-based line of each key path."""

    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int | None:
        """Line of the deepest part of `path` that exists (a missing key: its parent's line)."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def read_definition_text(file: Path, limit: int = MAX_FILE_BYTES, kind: str = "definition") -> str:
    """The text of a definition file (or another YAML file the project reads, named by `kind` in
    the messages, e.g. "stack file"); only regular files up to `limit` bytes, UTF-8."""
    try:
        info = file.stat()
    except (OSError, ValueError) as exc:
        raise YamlProblem(None, (), f"cannot read {kind}: {_os_reason(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise YamlProblem(None, (), f"is a folder, not a file: a {kind} must be a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise YamlProblem(None, (), "not a regular file (a device, pipe or socket)")
    if info.st_size > limit:
        raise YamlProblem(None, (), f"file is {info.st_size} bytes; {kind}s are limited to {limit}")
    try:
        with file.open("rb") as handle:
            raw = handle.read(limit + 1)  # the file may have grown since stat
    except OSError as exc:
        raise YamlProblem(None, (), f"cannot read {kind}: {_os_reason(exc)}") from None
    if len(raw) > limit:
        raise YamlProblem(None, (), f"file is over {limit} bytes; {kind}s are limited to that")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise YamlProblem(line, (), f"not UTF-8 text (byte {exc.start})") from None


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


@dataclass
class _Frame:
    """A mapping or list being built."""

    value: dict[str, Any] | list[Any]
    path: KeyPath
    line: int
    anchor: str | None
    size: int = 1
    key: str | None = None
    key_line: int = 0
    expect_key: bool = True
    merging: bool = False
    merges: list[tuple[int, Any]] = field(default_factory=list)


def _scalar(value: str, tag: str | None, plain: bool) -> Any:
    """A scalar's value: YAML 1.2 core schema for untagged plain scalars, else its tag's type."""
    if tag is None:
        if not plain:
            return value
        if _NULL.match(value):
            return None
        if value in _BOOL:
            return _BOOL[value]
        if _INT.match(value):
            return _integer(value, 10)
        if _OCT.match(value):
            return _integer(value[2:], 8)
        if _HEX.match(value):
            return _integer(value[2:], 16)
        if _FLOAT.match(value):
            return _finite(value)
        if _SPECIAL_FLOAT.match(value):
            raise ValueError(f"{value!r} is not a finite number")
        return value
    if tag == "!" or tag == _CORE + "str":
        return value
    if tag == _CORE + "null" and _NULL.match(value):
        return None
    if tag == _CORE + "bool" and value in _BOOL:
        return _BOOL[value]
    if tag == _CORE + "int" and (_INT.match(value) or _OCT.match(value) or _HEX.match(value)):
        return _scalar(value, None, True)
    if tag == _CORE + "float" and (_FLOAT.match(value) or _SPECIAL_FLOAT.match(value)):
        return _finite(value)
    if tag.startswith(_CORE) and tag[len(_CORE) :] in {"null", "bool", "int", "float"}:
        raise ValueError(f"{value!r} is not a valid !!{tag[len(_CORE) :]}")
    raise ValueError(f"unsupported YAML tag {_short_tag(tag)} (only plain values are allowed)")


def _integer(digits: str, base: int) -> int:
    # Checked before int(): Python refuses to convert more than 4300 digits, and nothing Azure ML
    # takes is wider than 64 bits.
    if len(digits.lstrip("+-0")) > 20:
        raise ValueError(f"integer {digits[:20]}... is out of range (64-bit)")
    number = int(digits, base)
    if not -_INT64 <= number < _INT64:
        raise ValueError(f"integer {digits} is out of range (64-bit)")
    return number


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text!r} is not a finite number")
    return number


def _short_tag(tag: str) -> str:
    return "!!" + tag[len(_CORE) :] if tag.startswith(_CORE) else tag


def _describe_key(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    return f"{type(value).__name__} {value!r}"


class _Builder:
    """Turns a stream of YAML events into values, one event at a time (no recursion)."""

    def __init__(self) -> None:
        self.stack: list[_Frame] = []
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.open_anchors: set[str] = set()
        self.alias_values = 0
        self.document = YamlDocument(None)
        self.documents = 0
        self.done = False

    def where(self) -> KeyPath:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return (*top.path, len(top.value))
        if top.key is not None and not top.expect_key:
            return (*top.path, top.key)
        return top.path

    def fail(self, line: int, message: str) -> YamlProblem:
        return YamlProblem(line, self.where(), message)

    def event(self, event: Any) -> None:
        line = event.start_mark.line + 1
        if isinstance(event, yaml.ScalarEvent):
            try:
                value = _scalar(event.value, event.tag, bool(event.implicit[0]))
            except ValueError as exc:
                raise self.fail(line, str(exc)) from None
            self.add(value, 1, line, event.anchor, plain=bool(event.implicit[0]))
        elif isinstance(event, yaml.AliasEvent):
            self.alias(event.anchor, line)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self.start(event, line)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            self.end()
        elif isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise YamlProblem(line, (), "more than one YAML document in this file")

    def start(self, event: Any, line: int) -> None:
        is_map = isinstance(event, yaml.MappingStartEvent)
        expected = _CORE + ("map" if is_map else "seq")
        if event.tag not in (None, "!", expected):
            what = "mapping" if is_map else "list"
            raise self.fail(line, f"unsupported YAML tag {_short_tag(event.tag)} on a {what}")
        if self.stack and isinstance(self.stack[-1].value, dict) and self.stack[-1].expect_key:
            raise self.fail(line, "a key must be a plain string, not a mapping or list")
        if len(self.stack) >= MAX_DEPTH:
            # The key path of the innermost level would be as long as the nesting: show its start.
            raise YamlProblem(line, self.where()[:4], f"nested more than {MAX_DEPTH} levels deep")
        path = self.where()
        if self.stack:
            self.record(path, line)
        if event.anchor is not None:
            self.open_anchors.add(event.anchor)
        self.stack.append(_Frame({} if is_map else [], path, line, event.anchor))

    def end(self) -> None:
        frame = self.stack.pop()
        if isinstance(frame.value, dict):
            self.apply_merges(frame)
        if frame.anchor is not None:
            self.open_anchors.discard(frame.anchor)
        self.add(frame.value, frame.size, frame.line, frame.anchor)

    def apply_merges(self, frame: _Frame) -> None:
        mapping = frame.value
        assert isinstance(mapping, dict)
        for line, merged in frame.merges:
            sources = merged if isinstance(merged, list) else [merged]
            if not all(isinstance(s, dict) for s in sources):
                raise YamlProblem(line, frame.path, "'<<' merges a mapping or a list of mappings")
            for source in sources:
                for key, value in source.items():
                    if key not in mapping:
                        mapping[key] = value
                        self.record((*frame.path, key), line)

    def alias(self, anchor: str, line: int) -> None:
        if anchor in self.open_anchors:
            raise self.fail(line, f"alias *{anchor} refers to a node that contains it")
        if anchor not in self.anchors:
            raise self.fail(line, f"alias *{anchor} has no anchor &{anchor} before it")
        value, size = self.anchors[anchor]
        self.alias_values += size
        if self.alias_values > MAX_ALIAS_VALUES:
            raise self.fail(
                line,
                f"aliases expand to more than {MAX_ALIAS_VALUES} values "
                "(an alias bomb?); write the values out or use fewer aliases",
            )
        self.add(value, size, line, None)

    def record(self, path: KeyPath, line: int) -> None:
        self.document.lines.setdefault(path, line)

    def add(
        self,
        value: Any,
        size: int,
        line: int,
        anchor: str | None,
        *,
        plain: bool = False,
    ) -> None:
        if anchor is not None:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.document.data = value
            self.document.lines.setdefault((), line)
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            self.record((*top.path, len(top.value)), line)
            top.value.append(value)
            return
        if top.expect_key:
            if plain and value == _MERGE:
                top.merging, top.key_line, top.expect_key = True, line, False
                return
            if not isinstance(value, str):
                raise YamlProblem(
                    line,
                    top.path,
                    f"keys must be strings, got {_describe_key(value)} (quote it if it is a name)",
                )
            if value in top.value:
                raise YamlProblem(line, (*top.path, value), f"duplicate key {value!r}")
            top.key, top.key_line, top.expect_key = value, line, False
            self.record((*top.path, value), line)
            return
        if top.merging:
            top.merges.append((top.key_line, value))
        else:
            assert top.key is not None
            top.value[top.key] = value
        top.key, top.expect_key, top.merging = None, True, False


def parse_yaml(text: str) -> YamlDocument:
    """Parse one YAML document within the limits above (else :class:`YamlProblem`)."""
    builder = _Builder()
    parser = _Parser(text)
    try:
        while parser.check_event():
            builder.event(parser.get_event())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise YamlProblem(line, (), f"YAML syntax error: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(None, (), f"YAML error: {exc}") from None
    finally:
        parser.dispose()
    return builder.document


def load_yaml_file(file: Path, kind: str = "definition") -> YamlDocument:
    """:func:`read_definition_text` then :func:`parse_yaml`."""
    return parse_yaml(read_definition_text(file, kind=kind))


__all__ = [
    "MAX_ALIAS_VALUES",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "YamlDocument",
    "YamlProblem",
    "load_yaml_file",
    "parse_yaml",
    "read_definition_text",
]
