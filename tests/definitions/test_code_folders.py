"""The one rule for code folders (infra.definitions.codetree): links stay inside the folder, no
loops or dangling links, everything readable; applied by validation, so hash, run, the program
and the provider (which all load through it) refuse the same folders."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.cli import main
from infra.definitions import load_definitions
from infra.definitions.codetree import code_tree_problems

REPO_ROOT = Path(__file__).resolve().parents[2]
PIPELINE = """\
name: p
experiment: exp
compute: cpu-cluster
steps:
  - {name: prep, kind: python, code: code, script: prep.py}
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with one pipeline whose code folder is `defs/p/code`."""
    (tmp_path / "Pulumi.yaml").write_text("name: t\n")
    code = tmp_path / "defs" / "p" / "code"
    (code / "lib").mkdir(parents=True)
    (code / "prep.py").write_text("print('prep')\n")
    (code / "lib" / "util.py").write_text("X = 1\n")
    (tmp_path / "defs" / "p" / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "big.csv").write_text("a,b\n")
    return tmp_path


@pytest.mark.parametrize(
    ("link", "target", "reason"),
    [
        ("passwd", "/etc/passwd", "symbolic link to /etc/passwd, outside the code folder"),
        ("etc", "/etc", "symbolic link to /etc, outside the code folder"),
        ("data.csv", "../../../data/big.csv", "outside the code folder"),
        ("sibling", "../pipeline.yaml", "outside the code folder"),
        ("up", "..", "outside the code folder"),
        ("loop", "loop", "is a symbolic link loop"),
        ("dangling", "missing.py", "is a dangling symbolic link"),
        ("lib/deep", "../../../../data", "outside the code folder"),
    ],
)
def test_links_that_leave_the_code_folder_loop_or_dangle_are_located_errors(
    repo: Path, link: str, target: str, reason: str
) -> None:
    (repo / "defs" / "p" / "code" / link).symlink_to(target)

    (error,) = load_definitions([repo / "defs"]).errors

    assert error.path == ("steps", 0, "code") and error.line == 5
    assert f"code folder 'code': {link} " in error.message and reason in error.message


def test_links_inside_the_code_folder_and_ignored_ones_are_accepted(repo: Path) -> None:
    code = repo / "defs" / "p" / "code"
    (code / "main.py").symlink_to("prep.py")
    (code / "helpers").symlink_to("lib")
    (code / "cache").symlink_to("/etc")
    (code / ".amlignore").write_text("cache\n")

    assert load_definitions([repo / "defs"]).errors == ()


def test_the_same_rule_stops_hash_and_run(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "defs" / "p" / "code" / "secrets").symlink_to("/etc")
    monkeypatch.chdir(repo)

    for command in (
        ["hash", "p", "--defs", "defs"],
        ["run", "p", "--defs", "defs", "--executor", "process", "--run-dir", "run"],
    ):
        code = main(command)
        err = capsys.readouterr().err
        assert code in (1, 2)
        assert "defs/p/pipeline.yaml:5: steps[0].code: code folder 'code': secrets" in err
    assert not (repo / "run").exists()


def test_many_problems_are_capped_and_counted(tmp_path: Path) -> None:
    for index in range(9):
        (tmp_path / f"l{index}").symlink_to("/etc")

    problems = code_tree_problems(tmp_path)

    assert len(problems) == 6 and problems[-1] == "... and 4 more"


# -- unreadable code, as a user without root's override --------------------------------------


@pytest.fixture
def shared_repo() -> Iterator[Path]:
    """A repository another user can read (tmp_path's parents are private to root)."""
    root = Path(tempfile.mkdtemp(prefix="amlpipe-perm-"))
    root.chmod(0o755)
    code = root / "defs" / "p" / "code"
    (code / "lib").mkdir(parents=True)
    (root / "Pulumi.yaml").write_text("name: t\n")
    (root / "defs" / "p" / "pipeline.yaml").write_text(PIPELINE)
    (code / "prep.py").write_text("print('prep')\n")
    (code / "lib" / "util.py").write_text("X = 1\n")
    for folder in (root / "defs", root / "defs" / "p", code, code / "lib"):
        folder.chmod(0o755)
    for file in (root / "Pulumi.yaml", root / "defs" / "p" / "pipeline.yaml", code / "prep.py"):
        file.chmod(0o644)
    (code / "lib" / "util.py").chmod(0o644)
    yield root
    for dirpath, dirnames, _ in os.walk(root):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)
    shutil.rmtree(root)


def _as_other_user(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    prefix: list[str] = []
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is missing: cannot drop root")
        prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    return subprocess.run(
        [*prefix, sys.executable, "-m", "infra.cli", *command],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT), "HOME": str(cwd)},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("unreadable", "expected"),
    [
        ("code", "steps[0].code: code folder 'code' cannot be read (permission denied)"),
        ("code/prep.py", "steps[0].script: script 'prep.py' cannot be read (permission denied)"),
        ("code/lib", "steps[0].code: code folder 'code': lib/ cannot be read (permission denied)"),
        (
            "code/lib/util.py",
            "steps[0].code: code folder 'code': lib/util.py cannot be read (permission denied)",
        ),
    ],
)
def test_unreadable_code_is_a_located_error_for_a_non_root_user(
    shared_repo: Path, unreadable: str, expected: str
) -> None:
    (shared_repo / "defs" / "p" / unreadable).chmod(0)

    for command in (["validate", "defs"], ["hash", "p", "--defs", "defs"]):
        result = _as_other_user(command, shared_repo)
        assert result.returncode in (1, 2), result.stderr
        assert "Traceback" not in result.stderr
        assert f"defs/p/pipeline.yaml:5: {expected}" in result.stderr, result.stderr


def test_a_gitignore_without_an_amlignore_is_a_located_error_for_every_api(repo: Path) -> None:
    # azureml-core (v1 snapshot) and azure-ai-ml (v2 upload) both fall back to .gitignore when a
    # folder has no .amlignore: lookup.csv would be missing on Azure alone, while the hash and
    # local runs include it. Refused where every consumer loads definitions.
    code = repo / "defs" / "p" / "code"
    (code / "lookup.csv").write_text("a,b\n")
    (code / ".gitignore").write_text("*.csv\n")
    errors = load_definitions([repo / "defs"], repo).errors
    (error,) = errors
    assert error.path == ("steps", 0, "code") and error.line == 5
    assert "has a .gitignore and no .amlignore" in error.message
    assert "an empty one keeps every file" in error.message
    # What the SDKs would apply, so that the check is not about a file they ignore.
    from azureml._project.ignore_file import get_project_ignore_file

    assert get_project_ignore_file(str(code)).get_path().endswith(".gitignore")

    # An .amlignore (empty: keep everything) makes every consumer follow the same file.
    (code / ".amlignore").write_text("")
    assert not load_definitions([repo / "defs"], repo).errors
    assert get_project_ignore_file(str(code)).get_path().endswith(".amlignore")


def test_a_gitignore_problem_does_not_hide_the_folders_other_problems(repo: Path) -> None:
    code = repo / "defs" / "p" / "code"
    (code / ".gitignore").write_text("*.csv\n")
    (code / "passwd").symlink_to("/etc/passwd")
    problems = code_tree_problems(code)
    assert len(problems) == 2
    assert "no .amlignore" in problems[0] and "outside the code folder" in problems[1]
