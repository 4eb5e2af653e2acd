"""Content hashes are stable across checkouts and formatting, and move with every byte of code."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pathspec
import pytest

from infra.definitions import hashing, load_definitions, pipeline_digest, tree_digest
from infra.definitions.hashing import (
    _ALWAYS_IGNORED,
    _ALWAYS_IGNORED_REGEX,
    IgnoreRules,
    PipelineDigest,
    Strategy,
    build_context_tag,
    ignore_rules,
)

REORDERED = """\
experiment: demo-exp    # keys in another order, other comments, flow style
name: demo
compute: cpu-cluster
schedules: [{cron: '30 2 * * *', name: nightly}]
parameters:
  rate: {default: 0.5, type: float}
  rows:
    default: 100
    type: int
steps:
  - {name: prep, kind: python, code: steps/prep, script: prep.py,
     args: [--rows, '${{parameters.rows}}', --out, '${{outputs.data}}'], outputs: [data]}
  - name: train
    script: train.R
    kind: r
    outputs: [model]
    code: steps/train
    args: [--data, '${{steps.prep.outputs.data}}', --model, '${{outputs.model}}']
"""


def digest_of(folder: Path, **refs: str) -> PipelineDigest:
    pipeline = load_definitions([folder]).raise_if_invalid()[0]
    return pipeline_digest(pipeline, refs)


def test_key_order_comments_and_formatting_do_not_change_the_hash(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    original = digest_of(make_repo())
    reordered = digest_of(make_repo(REORDERED, root=tmp_path / "other"))

    assert reordered == original


def test_a_clone_elsewhere_with_other_mtimes_and_modes_hashes_the_same(
    make_repo: Callable[..., Path], tmp_path: Path
) -> None:
    folder = make_repo()
    before = digest_of(folder)
    clone = tmp_path / "elsewhere" / "deeper"
    shutil.copytree(folder.parents[1], clone)
    script = clone / "pipeline_defs/demo/steps/prep/prep.py"
    os.utime(script, (0, 0))
    script.chmod(0o640)  # group/other bits differ between umasks; only the exec bit counts

    assert digest_of(clone / "pipeline_defs/demo") == before


def test_one_changed_byte_changes_that_step_and_the_pipeline_only(
    make_repo: Callable[..., Path],
) -> None:
    folder = make_repo()
    before = digest_of(folder)
    (folder / "steps/prep/util.py").write_text("X = 2\n")

    after = digest_of(folder)

    assert after.digest != before.digest
    assert after.steps["prep"].digest != before.steps["prep"].digest
    assert after.steps["train"] == before.steps["train"]


def test_the_executable_bit_is_part_of_the_hash(make_repo: Callable[..., Path]) -> None:
    folder = make_repo()
    before = digest_of(folder)
    (folder / "steps/train/train.R").chmod(0o755)

    assert digest_of(folder).steps["train"].digest != before.steps["train"].digest


def test_files_in_amlignore_and_bytecode_are_left_out(make_repo: Callable[..., Path]) -> None:
    folder = make_repo()
    before = digest_of(folder)
    (folder / "steps/prep/.amlignore").write_text("data/\n*.csv\n")
    with_ignore_file = digest_of(folder)
    (folder / "steps/prep/data").mkdir()
    (folder / "steps/prep/data/big.bin").write_bytes(b"\0" * 1000)
    (folder / "steps/prep/local.csv").write_text("a,b\n")
    (folder / "steps/prep/__pycache__").mkdir()
    (folder / "steps/prep/__pycache__/prep.cpython-311.pyc").write_bytes(b"junk")

    assert with_ignore_file.steps["prep"].digest != before.steps["prep"].digest
    assert digest_of(folder) == with_ignore_file


def test_a_new_file_in_a_code_folder_changes_the_hash(make_repo: Callable[..., Path]) -> None:
    folder = make_repo()
    before = digest_of(folder)
    (folder / "steps/train/helpers.R").write_text("f <- function() 1\n")

    assert digest_of(folder).steps["train"].digest != before.steps["train"].digest


def test_the_image_reference_changes_the_pipeline_hash_not_the_steps(
    make_repo: Callable[..., Path],
) -> None:
    folder = make_repo()
    one = digest_of(folder, training="acr.io/training:ctx-1@sha256:aa")
    two = digest_of(folder, training="acr.io/training:ctx-2@sha256:bb")

    assert one.digest != two.digest
    assert one.steps == two.steps
    assert two.images == {"training": "acr.io/training:ctx-2@sha256:bb"}


def test_schedules_do_not_change_the_pipeline_hash(make_repo: Callable[..., Path]) -> None:
    folder = make_repo()
    before = digest_of(folder)
    text = (folder / "pipeline.yaml").read_text().replace("30 2 * * *", "0 5 * * 1")
    (folder / "pipeline.yaml").write_text(text)

    assert digest_of(folder) == before


def test_a_parameter_default_changes_the_pipeline_hash(make_repo: Callable[..., Path]) -> None:
    folder = make_repo()
    before = digest_of(folder)
    text = (folder / "pipeline.yaml").read_text().replace("default: 100", "default: 200")
    (folder / "pipeline.yaml").write_text(text)

    assert digest_of(folder).digest != before.digest


def test_tree_digest_counts_files_and_bytes(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a/x.txt").write_text("hello")
    (tmp_path / "y.txt").write_text("abc")

    digest = tree_digest(tmp_path)

    assert (digest.files, digest.size) == (2, 8)


def test_build_context_tag_honours_dockerignore_and_build_args(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("cache/\n")
    tag = build_context_tag(tmp_path)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache/blob").write_text("x")

    assert build_context_tag(tmp_path) == tag
    assert build_context_tag(tmp_path, {"BASE_IMAGE": "local/base"}) != tag
    assert tag.startswith("ctx-") and len(tag) == 24


# The digest of this tree as computed by the first (os.walk + pathspec) implementation: a faster
# tree hash must give every existing checkout the same digest, or every stack would republish.
PINNED_TREE_DIGEST = "24185837410e8511b6c48135d0d8a3ca527d3af7ae254ddf741487ed5bb81872"


def _write_pinned_tree(root: Path, reverse: bool) -> None:
    files = {
        "a.py": b"print('a')\n",
        "a-b/c.py": b"c\n",
        "a/b.py": b"b\n",
        "a.b": b"dot\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "__pycache__/a.cpython-311.pyc": b"junk",
        "sub/m.pyc": b"junk",
        "data/big.bin": b"big",
        "x.log": b"log",
        "keep.log": b"kept",
        "logs/y.log": b"y",
        ".amlignore": b"data/\n*.log\n!keep.log\n# comment\n\n/top.txt\n",
        "top.txt": b"ignored at the top",
        "sub/top.txt": b"kept below",
        "empty.txt": b"",
        "\u00fcn\u00ef.txt": b"unicode name\n",
        "big.bin": bytes(range(256)) * 8200,  # above the one-read size: streamed
    }
    files.update(
        {f"pkg{i % 7}/mod{i}.py": f"X = {i}\n".encode() * (i % 50 + 1) for i in range(150)}
    )
    # Creation order decides the order entries are listed on disk.
    for rel, data in sorted(files.items(), reverse=reverse):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (root / "run.sh").chmod(0o755)
    (root / "pkg3/mod3.py").chmod(0o700)
    os.symlink("a.py", root / "link.py")
    os.symlink("sub", root / "linkdir")  # links to folders are not followed


def test_the_tree_digest_is_pinned_whatever_the_order_files_were_written_in(
    tmp_path: Path,
) -> None:
    for reverse in (False, True):
        root = tmp_path / f"tree-{reverse}"
        root.mkdir()
        _write_pinned_tree(root, reverse)

        digest = tree_digest(root)

        assert digest.digest == PINNED_TREE_DIGEST
        assert digest.files == 162


def test_a_fifo_in_a_code_folder_is_left_out_instead_of_blocking(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("print(1)\n")
    before = tree_digest(tmp_path)
    os.mkfifo(tmp_path / "pipe")

    assert tree_digest(tmp_path) == before


IGNORE_FILES = [
    ["data/", "*.log", "!keep.log"],
    ["/top.txt", "docs/**/draft*", "!docs/**/draft-final.md", "build"],
    ["*", "!*.py", "!*/"],
    ["a/**", "!a/b/", "a/b/c"],
    ["# only a comment", "", "\\#hash", "trailing\\ "],
]
PATHS = [
    "keep.log",
    "x.log",
    "logs/y.log",
    "data/",
    "data/x.bin",
    "top.txt",
    "sub/top.txt",
    "docs/a/draft1.md",
    "docs/a/b/draft-final.md",
    "build",
    "build/",
    "src/build/x",
    "main.py",
    "pkg/",
    "pkg/mod.py",
    "pkg/data.csv",
    "a/",
    "a/b/",
    "a/b/c",
    "a/b/d",
    "#hash",
    "trailing ",
    "__pycache__/",
    "m/n.pyc",
]


def test_ignore_rules_match_exactly_what_pathspec_matches() -> None:
    for lines in IGNORE_FILES:
        reference = pathspec.PathSpec.from_lines("gitwildmatch", lines)
        rules = IgnoreRules(lines)
        for path in PATHS:
            assert rules.ignores(path) == reference.match_file(path), (lines, path)


def test_the_always_ignored_rules_are_the_expression_pathspec_makes_of_them() -> None:
    # A folder without an ignore file is matched without importing pathspec, by the expression
    # pathspec compiles the always-ignored patterns to: the two must never drift apart.
    joined = IgnoreRules(_ALWAYS_IGNORED)._groups
    reference = pathspec.PathSpec.from_lines("gitwildmatch", _ALWAYS_IGNORED)
    default = ignore_rules(Path("/nonexistent"), ".amlignore")

    assert [(i, m.__self__.pattern) for i, m in joined] == [(True, _ALWAYS_IGNORED_REGEX)]  # type: ignore[attr-defined]
    for path in [*PATHS, "a/.git/", ".git", "x/.DS_Store", "y.pyc/", "a\nb/c.pyc", "__pycache__"]:
        assert default.ignores(path) == reference.match_file(path), path


@pytest.mark.parametrize("strategy", ["single", "parallel", "auto"])
def test_every_reading_strategy_gives_the_pinned_digest(tmp_path: Path, strategy: Strategy) -> None:
    _write_pinned_tree(tmp_path, reverse=False)

    digest = tree_digest(tmp_path, strategy=strategy)

    assert (digest.digest, digest.files) == (PINNED_TREE_DIGEST, 162)
    assert digest.strategy == ("parallel" if strategy == "parallel" else "single")


def test_auto_shares_out_the_rest_of_a_tree_once_it_has_read_many_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_pinned_tree(tmp_path, reverse=True)
    # The pinned tree holds about 2 MB (mostly one file): a lower threshold is crossed half-way.
    monkeypatch.setattr(hashing, "_PARALLEL_MIN_BYTES", 4096)

    digest = tree_digest(tmp_path)

    assert (digest.digest, digest.strategy) == (PINNED_TREE_DIGEST, "parallel")


def test_a_file_that_cannot_be_opened_is_an_error_naming_its_whole_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "locked.py").write_text("x = 1\n")
    real_open = os.open

    def refusing(path: str, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if os.path.basename(path) == "locked.py":
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, mode, dir_fd=dir_fd)

    monkeypatch.setattr(os, "open", refusing)

    with pytest.raises(PermissionError) as raised:
        tree_digest(tmp_path)
    assert raised.value.filename == str(tmp_path / "sub" / "locked.py")
