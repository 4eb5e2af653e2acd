"""Content hashes: of a folder tree, of each step, of a whole pipeline.

A hash must be the same on any checkout of the same commit, so it covers only what a checkout
reproduces: sorted relative paths (POSIX form), file bytes and the executable bit. Not the full mode
(umask differs between machines), not mtimes, not the checkout location. Files matched by the
folder's ignore file (`.amlignore` for step code, `.dockerignore` for a build context; gitignore
syntax) are left out, exactly as they are left out of what Azure ML uploads or Docker sends.

Spec parts are hashed as canonical JSON (sorted keys, fixed separators), so YAML comments, key
order and formatting never change a hash.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from infra.definitions.loader import LoadedPipeline

# Never part of code: bytecode caches differ per interpreter and machine.
_ALWAYS_IGNORED = ["__pycache__/", "*.pyc", ".git/", ".DS_Store"]
_CHUNK = 1 << 20
# Files up to this size are read in one call; larger ones are streamed by hashlib.file_digest.
_SMALL_FILE = 1 << 20
# Trees of at least this many files are read by a few threads, in batches of _BATCH files.
_PARALLEL_MIN_FILES = 64
_BATCH = 32
_WORKERS = 4
# The name pathspec gives the "matched a folder" group in each compiled pattern.
_DIR_GROUP = "ps_d"


@dataclass(frozen=True)
class TreeDigest:
    """Digest of a folder tree plus what went into it."""

    digest: str
    files: int
    size: int


@dataclass(frozen=True)
class StepDigest:
    """Digest of one step: its settings and its code folder."""

    digest: str
    code: TreeDigest


@dataclass(frozen=True)
class PipelineDigest:
    """Digest of a pipeline and of each of its steps (so a diff can say which step changed)."""

    digest: str
    steps: dict[str, StepDigest] = field(default_factory=dict)
    images: dict[str, str] = field(default_factory=dict)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _sha256_text(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


class IgnoreRules:
    """Gitignore-style rules of a folder, matched the way `pathspec` matches them, but fast.

    pathspec tries every pattern on every path. Here consecutive patterns of the same polarity
    (ignore / re-include with ``!``) are joined into one regular expression; the last group that
    matches a path decides, which is git's "last matching pattern wins" rule.
    """

    def __init__(self, patterns: Iterable[str]) -> None:
        compiled = pathspec.PathSpec.from_lines("gitwildmatch", patterns).patterns
        groups: list[tuple[bool, list[str]]] = []
        for pattern in compiled:
            regex = getattr(pattern, "regex", None)
            if pattern.include is None or regex is None:
                continue  # blank lines and comments
            # pathspec names a group in each pattern; names may not repeat in one expression.
            text = regex.pattern.replace(f"(?P<{_DIR_GROUP}>", "(?:")
            if groups and groups[-1][0] == pattern.include:
                groups[-1][1].append(text)
            else:
                groups.append((pattern.include, [text]))
        self._groups = [
            (include, re.compile("|".join(f"(?:{t})" for t in texts)).match)
            for include, texts in reversed(groups)
        ]

    def ignores(self, path: str) -> bool:
        """Whether the relative POSIX `path` (folders end with '/') is ignored."""
        for include, match in self._groups:
            if match(path) is not None:
                return include
        return False


def ignore_rules(folder: Path, ignore_file: str | None) -> IgnoreRules:
    """The always-ignored patterns plus those of `folder`'s ignore file, when it has one."""
    patterns = list(_ALWAYS_IGNORED)
    if ignore_file and (folder / ignore_file).is_file():
        patterns += (folder / ignore_file).read_text(encoding="utf-8").splitlines()
    return _compiled_rules(tuple(patterns))


@functools.lru_cache(maxsize=256)
def _compiled_rules(patterns: tuple[str, ...]) -> IgnoreRules:
    # Most code folders share the same rules (the always-ignored ones): compile them once.
    return IgnoreRules(patterns)


def _tree_entries(folder: Path, ignore_file: str | None) -> list[tuple[str, os.DirEntry[str]]]:
    """(relative POSIX path, directory entry) of every file or link kept, sorted by path.

    One `scandir` per folder and no Path objects per file: per-file overhead, not bytes, is what
    a code folder of many small files costs. Folders behave as with `os.walk`: unreadable ones
    are skipped, links to folders are neither followed nor hashed.
    """
    rules = ignore_rules(folder, ignore_file)
    found: list[tuple[str, os.DirEntry[str]]] = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, dirpath = pending.pop()
        try:
            entries = os.scandir(dirpath)
        except OSError:
            continue
        with entries:
            for entry in entries:
                rel = prefix + entry.name
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    # Prune ignored folders early so large ignored trees (data, venvs) cost nothing.
                    if not entry.is_symlink() and not rules.ignores(rel + "/"):
                        pending.append((rel + "/", entry.path))
                elif not rules.ignores(rel):
                    found.append((rel, entry))
    found.sort(key=lambda item: item[0])
    return found


def iter_tree(folder: Path, ignore_file: str | None = ".amlignore") -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every file in `folder` that is not ignored, sorted by path."""
    for rel, entry in _tree_entries(folder, ignore_file):
        yield rel, Path(entry.path)


def _file_digest(path: str) -> tuple[str, int, int] | None:
    """(SHA-256 of the bytes, mode, size) of a regular file; None when `path` is not one.

    Opened without following links and without blocking (a FIFO swapped in since the listing
    must not hang the hash), then checked with fstat, which is cheaper than a stat by path.
    Small files are read in one call, large ones streamed by hashlib.file_digest.
    """
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if info.st_size > _SMALL_FILE:
            with open(fd, "rb", closefd=False) as handle:
                digest = hashlib.file_digest(handle, "sha256")
        else:
            # One byte more than the size sees EOF in the same call, unless the file grew since
            # (then read on: the bytes hashed are the bytes read).
            data = os.read(fd, info.st_size + 1)
            digest = hashlib.sha256(data)
            if len(data) > info.st_size:
                while chunk := os.read(fd, _CHUNK):
                    digest.update(chunk)
        return digest.hexdigest(), info.st_mode, info.st_size
    finally:
        os.close(fd)


def _entry_digest(entry: os.DirEntry[str]) -> tuple[str, str, int] | None:
    """(kind, content digest, size) of a listed entry; None for what a checkout cannot hold."""
    if entry.is_symlink():
        # A link is hashed as its target text: that is what git checks out.
        target = os.readlink(entry.path).encode("utf-8")
        return "l", hashlib.sha256(target).hexdigest(), len(target)
    if entry.is_file(follow_symlinks=False) and (found := _file_digest(entry.path)):
        content, mode, size = found
        return ("x" if mode & stat.S_IXUSR else "f"), content, size
    return None


def _batch_digests(entries: list[os.DirEntry[str]]) -> list[tuple[str, str, int] | None]:
    return [_entry_digest(entry) for entry in entries]


def tree_digest(folder: Path, ignore_file: str | None = ".amlignore") -> TreeDigest:
    """Digest of the files under `folder`: relative paths, bytes and executable bits.

    Only regular files and symbolic links count (what a git checkout reproduces); sockets, FIFOs
    and devices are left out rather than read (reading a FIFO would block). Files are read by a
    few threads when there are many: open/read/fstat and hashing large buffers release the GIL,
    so system-call latency and hashing overlap; the digest is assembled in path order regardless.
    """
    listed = _tree_entries(folder, ignore_file)
    entries = [entry for _, entry in listed]
    if len(entries) < _PARALLEL_MIN_FILES:
        results = _batch_digests(entries)
    else:
        batches = [entries[i : i + _BATCH] for i in range(0, len(entries), _BATCH)]
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            results = [r for batch in pool.map(_batch_digests, batches) for r in batch]
    lines: list[bytes] = []
    size = 0
    for (rel, _), result in zip(listed, results, strict=True):
        if result is not None:
            kind, content, item_size = result
            lines.append(f"{rel}\0{kind}\0{content}\n".encode())
            size += item_size
    return TreeDigest(hashlib.sha256(b"".join(lines)).hexdigest(), len(lines), size)


def step_digests(
    loaded: LoadedPipeline, trees: dict[Path, TreeDigest] | None = None
) -> dict[str, StepDigest]:
    """Digest of every step: its normalized settings (defaults resolved) and its code tree.

    `trees` caches code-tree digests by resolved folder; pass the same dict for every pipeline
    of one evaluation so a folder shared by several steps or pipelines is read once.
    """
    spec = loaded.spec
    result: dict[str, StepDigest] = {}
    code_cache: dict[Path, TreeDigest] = {} if trees is None else trees
    for step in spec.steps:
        code_dir = (loaded.folder / step.code).resolve()
        if code_dir not in code_cache:
            code_cache[code_dir] = tree_digest(code_dir)
        code = code_cache[code_dir]
        settings = step.model_dump(mode="json")
        settings["compute"] = spec.step_compute(step)
        settings["image"] = spec.step_image(step)
        result[step.name] = StepDigest(_sha256_text(canonical_json(settings), code.digest), code)
    return result


def pipeline_digest(
    loaded: LoadedPipeline,
    image_refs: Mapping[str, str] | None = None,
    steps: Mapping[str, StepDigest] | None = None,
) -> PipelineDigest:
    """Digest of what a publish depends on: settings, every step, and the image references.

    Schedules and tags are left out on purpose: they are managed without publishing a new version.
    So is the experiment: a published pipeline has none (whoever submits a run names it), so a
    new experiment name must not publish a new version.
    `image_refs` maps image keys to the references they resolve to (e.g.
    `registry/name:tag@digest`); a key without a reference is hashed by name. `steps` are the
    step digests when already computed (:func:`step_digests`), so code is not read twice.
    """
    spec = loaded.spec
    steps = dict(steps) if steps is not None else step_digests(loaded)
    used_images = sorted({spec.step_image(s) for s in spec.steps})
    images = {key: (image_refs or {}).get(key, key) for key in used_images}
    settings = spec.model_dump(mode="json", exclude={"steps", "schedules", "tags", "experiment"})
    digest = _sha256_text(
        canonical_json(settings),
        canonical_json({name: s.digest for name, s in steps.items()}),
        canonical_json(images),
    )
    return PipelineDigest(digest, steps, images)


def build_context_tag(context: Path, build_args: Mapping[str, str] | None = None) -> str:
    """Image tag for a Docker build context: a digest of its files (`.dockerignore` honoured) and
    build arguments. Shared by the Pulumi image resource and `amlpipe build`, so an unchanged
    context maps to an existing tag and is neither rebuilt nor pushed."""
    files = tree_digest(context, ignore_file=".dockerignore").digest
    return "ctx-" + _sha256_text(files, canonical_json(dict(build_args or {})))[:20]
