"""Every `amlpipe` subcommand over the whole bad-definition corpus: never a traceback, exit 1 or 2,
and every problem located (file, and line and key where the file has them).

The corpus (tests/bad_defs) is copied next to machine-made hostile cases (a file over the size
limit, a folder or a device named pipeline.yaml, a link loop, a 1000-step cycle, code folders with
links leaving them) and each subcommand that reads definitions is run on each case in-process, as
the console script runs it; one subprocess per subcommand then runs the real entry point over the
whole folder at once.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra.cli import main
from infra.definitions.yamlsource import MAX_FILE_BYTES

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "tests" / "bad_defs"
HEADER = "name: p\nexperiment: exp\ncompute: cpu-cluster\n"
STEP = "steps:\n  - {name: prep, kind: python, code: code, script: prep.py}\n"
# A located problem: `path/pipeline.yaml:LINE: key.path: message`, or the path alone when the
# whole file or folder is the problem (unreadable, too large, not a file).
LOCATED = re.compile(r"^\s*(?P<file>[^:]*\S):(?:(?P<line>\d+):)? (?P<rest>.+)$")


def _hostile_cases(root: Path) -> None:
    """Cases that cannot live in git or would bloat it."""

    def pipeline(name: str, text: str, with_code: bool = True) -> Path:
        folder = root / name
        folder.mkdir(parents=True)
        if with_code:
            (folder / "code").mkdir()
            (folder / "code" / "prep.py").write_text("print('prep')\n")
        (folder / "pipeline.yaml").write_text(text)
        return folder

    big = pipeline("too_large", HEADER + STEP)
    with (big / "pipeline.yaml").open("a") as handle:
        handle.write(("#" * 99 + "\n") * (MAX_FILE_BYTES // 100 + 1))
    (root / "folder_named_pipeline_yaml" / "pipeline.yaml").mkdir(parents=True)
    (root / "device_named_pipeline_yaml").mkdir()
    (root / "device_named_pipeline_yaml" / "pipeline.yaml").symlink_to("/dev/zero")
    (root / "fifo_named_pipeline_yaml").mkdir()
    os.mkfifo(root / "fifo_named_pipeline_yaml" / "pipeline.yaml")
    (root / "pipeline_yaml_link_loop").mkdir()
    (root / "pipeline_yaml_link_loop" / "pipeline.yaml").symlink_to("pipeline.yaml")
    pipeline("not_utf8", HEADER + "description: caf\xe9\n" + STEP)
    (root / "not_utf8" / "pipeline.yaml").write_bytes(
        (HEADER + "description: caf").encode() + b"\xe9\n" + STEP.encode()
    )
    pipeline("empty_file", "")
    pipeline("list_document", "- name: p\n- steps: []\n")
    step = "  - {{name: s{0}, kind: command, code: code, command: [echo], after: [s{1}]}}"
    cycle = ["steps:"] + [step.format(i, (i - 1) % 1000) for i in range(1000)]
    pipeline("cycle_of_1000_steps", HEADER + "\n".join(cycle) + "\n")
    links = pipeline("code_links_leave_the_folder", HEADER + STEP)
    (links / "code" / "passwd").symlink_to("/etc/passwd")
    (links / "code" / "up").symlink_to("..")
    (links / "code" / "loop").symlink_to("loop")
    (links / "code" / "dangling").symlink_to("nowhere")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "defs"
    shutil.copytree(CORPUS, root, symlinks=True)
    _hostile_cases(root)
    return root


def _cases(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def _name_in(case: Path) -> str:
    """The pipeline name a case declares (what a user would pass to graph/hash/run)."""
    for file in sorted(case.rglob("pipeline.yaml")):
        if file.is_file() and not file.is_symlink():
            found = re.search(r"^name: *(\S+)", file.read_text(errors="replace"), re.M)
            if found:
                return found.group(1)
    return "p"


def _commands(case: str, name: str, run_dir: Path) -> list[list[str]]:
    return [
        ["validate", case],
        ["validate", "--json", case],
        ["graph", name, "--defs", case],
        ["graph", name, "--dot", "--defs", case],
        ["hash", name, "--defs", case],
        ["hash", name, "--json", "--defs", case],
        ["run", name, "--defs", case, "--executor", "process", "--run-dir", str(run_dir)],
        ["run", name, "--defs", case, "--executor", "process", "--param", "rows=١٢٣"],
    ]


def _assert_located(case: str, text: str, command: list[str]) -> None:
    lines = [line for line in text.splitlines() if f"{case}/" in line or line.startswith(case)]
    assert lines, f"{command}: no problem names a file of the case:\n{text}"
    for line in lines:
        found = LOCATED.match(line)
        assert found, f"{command}: not a located problem: {line!r}"
        assert found.group("file").startswith(case), line


def test_every_subcommand_on_every_case_exits_1_or_2_with_located_problems(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(corpus)
    cases = _cases(corpus)
    assert len(cases) >= 80
    failures = []
    for case in cases:
        for command in _commands(case, _name_in(corpus / case), tmp_path / case / "run"):
            try:
                code = main(command)
            except SystemExit as exc:  # argparse usage errors
                code = exc.code if isinstance(exc.code, int) else 2
            out, err = capsys.readouterr()
            if code not in (1, 2):
                failures.append(f"{command}: exit {code}\n{err}")
                continue
            if command[:2] == ["validate", "--json"]:
                assert '"valid": false' in out, command
                continue
            _assert_located(case, err, command)
    assert not failures, "\n".join(failures)


def test_no_case_leaves_a_run_folder_behind(corpus: Path, tmp_path: Path) -> None:
    # Every case is refused before a run starts: nothing may have been created.
    assert not any((tmp_path / c).exists() for c in _cases(corpus))


@pytest.mark.parametrize(
    "command",
    [
        ["validate", "."],
        ["graph", "p", "--defs", "."],
        ["hash", "p", "--defs", "."],
        ["run", "p", "--defs", ".", "--executor", "process"],
    ],
)
def test_the_console_entry_point_over_the_whole_corpus_prints_no_traceback(
    corpus: Path, command: list[str]
) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "infra.cli", *command],
        cwd=corpus,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode in (1, 2), result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    assert "too_large/pipeline.yaml: <document>: file is" in result.stderr


def test_schema_to_an_unwritable_place_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    for target in [tmp_path, tmp_path / "file" / "below.json", tmp_path / ("x" * 300)]:
        code = main(["schema", "--output", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_a_broken_file_next_to_a_valid_pipeline_is_reported_and_the_valid_one_still_works(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Decision (README, "Definition files"): graph, hash and run of a valid pipeline go ahead;
    # problems in other files of the folder are printed, located, on stderr.
    defs = tmp_path / "defs"
    (defs / "good" / "code").mkdir(parents=True)
    (defs / "good" / "code" / "prep.py").write_text("print('ran')\n")
    (defs / "good" / "pipeline.yaml").write_text(HEADER.replace("p", "good", 1) + STEP)
    (defs / "deep").mkdir()
    (defs / "deep" / "pipeline.yaml").write_text(HEADER + "tags: " + "[" * 300 + "]" * 300)
    monkeypatch.chdir(tmp_path)

    for command in (
        ["graph", "good", "--defs", "defs"],
        ["hash", "good", "--defs", "defs"],
        ["run", "good", "--defs", "defs", "--executor", "process", "--run-dir", "run"],
    ):
        code = main(command)
        err = capsys.readouterr().err
        assert code == 0, err
        assert "defs/deep/pipeline.yaml:4: tags[0]" in err, command
    assert (tmp_path / "run" / "summary.json").is_file()
