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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # only annotations: hashing a tree needs neither the loader nor pydantic
    from infra.definitions.loader import LoadedPipeline

# Never part of code: bytecode caches differ per interpreter and machine.
_ALWAYS_IGNORED = ["__pycache__/", "*.pyc", ".git/", ".DS_Store"]
# What pathspec compiles _ALWAYS_IGNORED to (a test pins the equality): a folder without an
# ignore file, the common case, is matched without importing pathspec.
_ALWAYS_IGNORED_REGEX = (
    r"(?:^(?:.+/)?__pycache__(?:/).*$)|(?:^(?:.+/)?[^/]*\.pyc(?:(?:/).*)?$)"
    r"|(?:^(?:.+/)?\.git(?:/).*$)|(?:^(?:.+/)?\.DS_Store(?:(?:/).*)?$)"
)
_CHUNK = 1 << 20
# Files up to this size are read in one call; larger ones are streamed by hashlib.file_digest.
_SMALL_FILE = 1 << 20
# Tree strategy. Per file, the cost is four system calls and a little Python, all under the GIL
# but for the calls themselves; threads only pay where hashing big buffers (which releases the
# GIL) dominates. So a tree is read by one thread until the bytes it has read reach
# _PARALLEL_MIN_BYTES, and only then are the files left (if at least _PARALLEL_MIN_FILES) shared
# among _WORKERS threads in batches of _BATCH. Decided on bytes actually read, not on a guess.
# Figures: bench/hash_throughput.py prints both strategies on each tree shape.
_PARALLEL_MIN_BYTES = 8 << 20
_PARALLEL_MIN_FILES = 4
_BATCH = 16
_WORKERS = 4
# The name pathspec gives the "matched a folder" group in each compiled pattern.
_DIR_GROUP = "ps_d"
# Files are opened relative to their folder's descriptor (one path component to resolve, not
# the whole path), without following links and without blocking: a FIFO swapped in since the
# listing must not hang the hash.
_FILE_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
Strategy = Literal["auto", "single", "parallel"]


@dataclass(frozen=True)
class TreeDigest:
    """Digest of a folder tree plus what went into it."""

    digest: str
    files: int
    size: int
    strategy: str = field(default="single", compare=False)
    """How the files were read: "single" (one thread) or "parallel" (not part of equality)."""


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
        import pathspec

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


class _AlwaysIgnoredRules(IgnoreRules):
    """:class:`IgnoreRules` of `_ALWAYS_IGNORED` alone, from the expression pathspec makes."""

    def __init__(self) -> None:  # no super().__init__: that is what needs pathspec
        self._groups = [(True, re.compile(_ALWAYS_IGNORED_REGEX).match)]
        self._match = self._groups[0][1]

    def ignores(self, path: str) -> bool:
        """Whether the relative POSIX `path` (folders end with '/') is ignored."""
        # Each alternative of the expression needs one of these words in the path: most paths
        # hold none, and four substring tests cost less than the expression.
        if "__pycache__" in path or ".pyc" in path or ".git" in path or ".DS_Store" in path:
            return self._match(path) is not None
        return False


def ignore_rules(folder: Path, ignore_file: str | None) -> IgnoreRules:
    """The always-ignored patterns plus those of `folder`'s ignore file, when it has one."""
    if ignore_file and (folder / ignore_file).is_file():
        extra = (folder / ignore_file).read_text(encoding="utf-8").splitlines()
        return _compiled_rules((*_ALWAYS_IGNORED, *extra))
    return _always_ignored_rules()


@functools.lru_cache(maxsize=1)
def _always_ignored_rules() -> IgnoreRules:
    return _AlwaysIgnoredRules()


@functools.lru_cache(maxsize=256)
def _compiled_rules(patterns: tuple[str, ...]) -> IgnoreRules:
    # Most code folders share the same rules (the always-ignored ones): compile them once.
    return IgnoreRules(patterns)


# A listed item: (relative POSIX path, index of its folder in the walk's folder list, name in
# that folder, whether it is a symbolic link).
_Item = tuple[str, int, str, bool]


def _walk(folder: Path, ignore_file: str | None) -> tuple[list[str], list[_Item]]:
    """Every file or link kept under `folder`, in listing order, and the folders they are in.

    One `scandir` per folder and no Path objects or stat calls per file (the listing's file
    type is enough): per-file overhead, not bytes, is what a code folder of many small files
    costs. Folders behave as with `os.walk`: unreadable ones are skipped, links to folders are
    neither followed nor hashed. Sockets, FIFOs and devices are left out: a checkout holds none.
    """
    rules = ignore_rules(folder, ignore_file)
    ignores = rules.ignores
    folders: list[str] = []
    items: list[_Item] = []
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, dirpath = pending.pop()
        try:
            entries = os.scandir(dirpath)
        except OSError:
            continue
        index = len(folders)
        folders.append(dirpath)
        with entries:
            for entry in entries:
                rel = prefix + entry.name
                try:
                    is_dir = entry.is_dir()
                except OSError:
                    is_dir = False
                if is_dir:
                    # Prune ignored folders early so large ignored trees (data, venvs) cost nothing.
                    if not entry.is_symlink() and not ignores(rel + "/"):
                        pending.append((rel + "/", entry.path))
                elif ignores(rel):
                    continue
                elif entry.is_symlink():
                    items.append((rel, index, entry.name, True))
                elif entry.is_file(follow_symlinks=False):
                    items.append((rel, index, entry.name, False))
    return folders, items


def iter_tree(folder: Path, ignore_file: str | None = ".amlignore") -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every file in `folder` that is not ignored, sorted by path."""
    folders, items = _walk(folder, ignore_file)
    for rel, index, name, _ in sorted(items):
        yield rel, Path(folders[index], name)


# One result per listed item: (the item's line in the tree digest, its size), or None when the
# item turned out not to be a regular file or link when read.
_Result = tuple[bytes, int] | None


def _reraise_with_path(exc: OSError, path: str) -> OSError:
    # Relative opens name only the file; errors must name the whole path, as before.
    return type(exc)(exc.errno, exc.strerror, path)


def _read_items(
    folders: list[str],
    items: list[_Item],
    results: list[_Result],
    start: int,
    stop: int,
    byte_budget: float = float("inf"),
) -> tuple[int, int]:
    """Fill `results[start:stop]` in order, reading each folder's files relative to one open
    descriptor of the folder. Returns (index after the last item read, bytes read): it stops
    early once it has read `byte_budget` bytes (the caller then shares out the rest).

    Small files cost open + fstat + one read + close: fstat (cheaper than a stat by path) says
    the opened file is still a regular file, gives the executable bit and the size to read in
    one call (one byte more sees EOF in the same call, unless the file grew since: then it is
    read on, and the bytes hashed are the bytes read). Large files are streamed by
    hashlib.file_digest, which releases the GIL while it hashes.
    """
    sha256 = hashlib.sha256
    read, fstat, close, open_, S_ISREG = os.read, os.fstat, os.close, os.open, stat.S_ISREG
    dir_fd = -1
    open_index = -1
    total = 0
    index = start
    try:
        while index < stop:
            rel, folder_index, name, is_link = items[index]
            if folder_index != open_index:
                if dir_fd >= 0:
                    close(dir_fd)
                    dir_fd = -1
                try:
                    dir_fd = open_(folders[folder_index], _DIR_FLAGS)
                except OSError as exc:
                    raise _reraise_with_path(exc, folders[folder_index]) from None
                open_index = folder_index
            if is_link:
                # A link is hashed as its target text: that is what git checks out.
                try:
                    target = os.readlink(name, dir_fd=dir_fd).encode("utf-8")
                except OSError as exc:
                    path = os.path.join(folders[folder_index], name)
                    raise _reraise_with_path(exc, path) from None
                content = sha256(target).hexdigest()
                results[index] = (f"{rel}\0l\0{content}\n".encode(), len(target))
                total += len(target)
                index += 1
                continue
            try:
                fd = open_(name, _FILE_FLAGS, dir_fd=dir_fd)
            except OSError as exc:
                raise _reraise_with_path(exc, os.path.join(folders[folder_index], name)) from None
            try:
                info = fstat(fd)
                if not S_ISREG(info.st_mode):
                    results[index] = None
                    index += 1
                    continue
                size = info.st_size
                if size > _SMALL_FILE:
                    with open(fd, "rb", closefd=False) as handle:
                        digest = hashlib.file_digest(handle, "sha256")
                else:
                    data = read(fd, size + 1)
                    digest = sha256(data)
                    if len(data) > size:
                        while chunk := read(fd, _CHUNK):
                            digest.update(chunk)
            finally:
                close(fd)
            kind = "x" if info.st_mode & stat.S_IXUSR else "f"
            results[index] = (f"{rel}\0{kind}\0{digest.hexdigest()}\n".encode(), size)
            total += size
            index += 1
            if total >= byte_budget:
                break
    finally:
        if dir_fd >= 0:
            close(dir_fd)
    return index, total


def tree_digest(
    folder: Path, ignore_file: str | None = ".amlignore", *, strategy: Strategy = "auto"
) -> TreeDigest:
    """Digest of the files under `folder`: relative paths, bytes and executable bits.

    Only regular files and symbolic links count (what a git checkout reproduces); sockets, FIFOs
    and devices are left out rather than read (reading a FIFO would block). The digest is
    assembled in path order whatever the order files are listed or read in. `strategy` decides
    how files are read ("auto": one thread, a few once the tree proves to hold many bytes; see
    _PARALLEL_MIN_BYTES); the digest never depends on it.
    """
    folders, items = _walk(folder, ignore_file)
    count = len(items)
    results: list[_Result] = [None] * count
    budget = {"auto": _PARALLEL_MIN_BYTES, "single": float("inf"), "parallel": 0}[strategy]
    done, _ = _read_items(folders, items, results, 0, count, budget)
    used = "single"
    if count - done >= _PARALLEL_MIN_FILES:
        from concurrent.futures import ThreadPoolExecutor

        used = "parallel"
        bounds = [(i, min(i + _BATCH, count)) for i in range(done, count, _BATCH)]
        with ThreadPoolExecutor(max_workers=_WORKERS) as pool:
            futures = [
                pool.submit(_read_items, folders, items, results, lo, hi) for lo, hi in bounds
            ]
            for future in futures:
                future.result()
    elif done < count:
        _read_items(folders, items, results, done, count)
    # Sorted by relative path, as the digest has always been (the first item of each pair).
    kept = sorted((items[i][0], result) for i, result in enumerate(results) if result is not None)
    size = sum(result[1] for _, result in kept)
    lines = b"".join(result[0] for _, result in kept)
    return TreeDigest(hashlib.sha256(lines).hexdigest(), len(kept), size, used)


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
