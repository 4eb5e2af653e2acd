"""The one rule for what a step's code folder may hold, checked before anything uses the folder.

Every consumer of a code folder takes it as a tree of plain files: the content hash (links hashed
as their target text, the way git checks them out), the Azure ML snapshot upload (which follows
links), the Docker runner (which mounts only the code folder) and the process runner (which reads
through links). They agree only if every link in the folder resolves to something inside the same
folder. So:

- a link whose target leaves the code folder (to `/etc`, to data elsewhere, to a sibling step) is
  refused: its content would be uploaded but not hashed, and would dangle in the container;
- a dangling link and a link loop are refused (the upload would fail on them);
- a folder or file that cannot be read is refused (the upload silently leaves such files out, and
  listing skips such folders, so the hash would not cover them);
- a `.gitignore` without an `.amlignore` is refused: both Azure ML SDKs (azureml-core's snapshot
  for v1, azure-ai-ml's code upload for v2) fall back to `.gitignore` when a folder has no
  `.amlignore`, so what it lists would be missing on Azure alone, while the hash, local runs and
  the image's view of the folder include it. An `.amlignore` (an empty one keeps every file)
  makes every consumer follow the same file.

Paths the folder's `.amlignore` leaves out are not looked at: nothing uploads or hashes them.
Checked by validation (:mod:`infra.definitions.validate`), so the CLI, the runner, the Pulumi
program and the provider, which all load definitions through it, apply the same rule.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

AMLIGNORE = ".amlignore"
GITIGNORE = ".gitignore"
MAX_PROBLEMS = 5
"""Problems reported per code folder (the first ones, in path order); the rest are counted."""


def _reason(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "is a dangling symbolic link"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "cannot be read (permission denied)"
    return f"cannot be read ({exc.strerror or exc})"


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


class _AlwaysIgnored:
    """The hashing module's always-ignored patterns (`__pycache__/`, `*.pyc`, `.git/`,
    `.DS_Store`) without loading it: `validate` must start fast, and a folder without an ignore
    file needs nothing more."""

    @staticmethod
    def ignores(path: str) -> bool:
        name = path.rstrip("/").rsplit("/", 1)[-1]
        if path.endswith("/") and name in ("__pycache__", ".git"):
            return True
        return name.endswith(".pyc") or name == ".DS_Store"


def code_tree_problems(folder: Path, ignore_file: str | None = AMLIGNORE) -> list[str]:
    """Why the code folder `folder` breaks the rule above (empty when it does not), each message
    naming the offending path relative to the folder."""
    problems: list[str] = []
    if (
        ignore_file == AMLIGNORE
        and os.path.isfile(os.path.join(folder, GITIGNORE))
        and not os.path.lexists(os.path.join(folder, AMLIGNORE))
    ):
        problems.append(
            f"has a {GITIGNORE} and no {AMLIGNORE}: Azure ML would upload it without what "
            f"{GITIGNORE} lists, while the content hash and local runs include it; add an "
            f"{AMLIGNORE} (an empty one keeps every file)"
        )
    top = os.path.realpath(folder)
    rules: Any = _AlwaysIgnored()
    if ignore_file and os.path.lexists(os.path.join(folder, ignore_file)):
        # The hashing module's own rules (and pathspec), only for folders that have the file.
        from infra.definitions.hashing import ignore_rules

        try:
            rules = ignore_rules(folder, ignore_file)
        except (OSError, UnicodeDecodeError) as exc:
            return [f"{ignore_file} cannot be read ({exc})"]
    pending = [("", os.fspath(folder))]
    while pending:
        prefix, dirpath = pending.pop()
        try:
            with os.scandir(dirpath) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            problems.append(f"{prefix or './'} {_reason(exc)}")
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_symlink():
                if rules.ignores(rel) and rules.ignores(rel + "/"):
                    continue
                try:
                    target = os.path.realpath(entry.path, strict=True)
                except OSError as exc:
                    problems.append(f"{rel} {_reason(exc)}")
                    continue
                if not _inside(target, top):
                    problems.append(
                        f"{rel} is a symbolic link to {target}, outside the code folder "
                        "(copy what it points to into the folder)"
                    )
                    continue
                if not os.access(entry.path, os.R_OK):
                    problems.append(f"{rel} cannot be read (permission denied)")
                # A link to a folder inside the code folder: that folder is checked where it is.
                continue
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError as exc:
                problems.append(f"{rel} {_reason(exc)}")
                continue
            if stat.S_ISDIR(mode):
                if not rules.ignores(rel + "/"):
                    pending.append((rel + "/", entry.path))
            elif not rules.ignores(rel) and not os.access(entry.path, os.R_OK):
                problems.append(f"{rel} cannot be read (permission denied)")
    problems.sort()
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = [*problems[:MAX_PROBLEMS], f"... and {more} more"]
    return problems
