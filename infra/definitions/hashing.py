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

import hashlib
import json
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pathspec

from infra.definitions.loader import LoadedPipeline

# Never part of code: bytecode caches differ per interpreter and machine.
_ALWAYS_IGNORED = ["__pycache__/", "*.pyc", ".git/", ".DS_Store"]
_CHUNK = 1 << 20


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


def _ignore_spec(folder: Path, ignore_file: str | None) -> pathspec.PathSpec:
    patterns = list(_ALWAYS_IGNORED)
    if ignore_file and (folder / ignore_file).is_file():
        patterns += (folder / ignore_file).read_text(encoding="utf-8").splitlines()
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def iter_tree(folder: Path, ignore_file: str | None = ".amlignore") -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every file in `folder` that is not ignored, sorted by path."""
    spec = _ignore_spec(folder, ignore_file)
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel_dir = Path(dirpath).relative_to(folder).as_posix()
        prefix = "" if rel_dir == "." else rel_dir + "/"
        # Prune ignored directories early so large ignored trees (data, venvs) cost nothing.
        dirnames[:] = [d for d in dirnames if not spec.match_file(prefix + d + "/")]
        for name in filenames:
            rel = prefix + name
            if not spec.match_file(rel):
                found.append((rel, Path(dirpath) / name))
    yield from sorted(found)


def tree_digest(folder: Path, ignore_file: str | None = ".amlignore") -> TreeDigest:
    """Digest of the files under `folder`: relative paths, bytes and executable bits."""
    outer = hashlib.sha256()
    files = size = 0
    for rel, path in iter_tree(folder, ignore_file):
        info = path.lstat()
        inner = hashlib.sha256()
        if stat.S_ISLNK(info.st_mode):
            # A link is hashed as its target text: that is what git checks out.
            kind, inner_bytes = "l", os.readlink(path).encode("utf-8")
            inner.update(inner_bytes)
            size += len(inner_bytes)
        else:
            kind = "x" if info.st_mode & stat.S_IXUSR else "f"
            with path.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    inner.update(chunk)
            size += info.st_size
        outer.update(f"{rel}\0{kind}\0{inner.hexdigest()}\n".encode())
        files += 1
    return TreeDigest(outer.hexdigest(), files, size)


def step_digests(loaded: LoadedPipeline) -> dict[str, StepDigest]:
    """Digest of every step: its normalized settings (defaults resolved) and its code tree."""
    spec = loaded.spec
    result: dict[str, StepDigest] = {}
    code_cache: dict[Path, TreeDigest] = {}
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
    loaded: LoadedPipeline, image_refs: Mapping[str, str] | None = None
) -> PipelineDigest:
    """Digest of what a publish depends on: settings, every step, and the image references.

    Schedules and tags are left out on purpose: they are managed without publishing a new version.
    `image_refs` maps image keys to the references they resolve to (e.g.
    `registry/name:tag@digest`); a key without a reference is hashed by name.
    """
    spec = loaded.spec
    steps = step_digests(loaded)
    used_images = sorted({spec.step_image(s) for s in spec.steps})
    images = {key: (image_refs or {}).get(key, key) for key in used_images}
    settings = spec.model_dump(mode="json", exclude={"steps", "schedules", "tags"})
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
