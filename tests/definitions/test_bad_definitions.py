"""Every bad-definition case is rejected by `amlpipe validate` with its located messages.

Each folder under tests/bad_defs holds one broken definition and `expected.txt`: the exact problem
lines (paths relative to the case folder) that must be reported, and nothing else.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infra.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
CORPUS = REPO_ROOT / "tests" / "bad_defs"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.txt").is_file())


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # Messages show paths relative to the working directory, as a user at the repo root sees them.
    monkeypatch.chdir(REPO_ROOT)


def test_corpus_has_a_case_per_rule() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_bad_definition_is_rejected_with_located_messages(
    case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = Path("tests/bad_defs") / case
    expected = [
        f"{folder.as_posix()}/{line}"
        for line in (CORPUS / case / "expected.txt").read_text().splitlines()
        if line.strip()
    ]

    code = main(["validate", str(folder)])

    reported = [line for line in capsys.readouterr().err.splitlines() if ":" in line]
    reported = [line for line in reported if not line.endswith("found")]
    assert code == 1
    assert len(reported) == len(expected), reported
    # A reported line may add detail after the expected text (e.g. an absolute path).
    for line in expected:
        assert any(r.startswith(line) for r in reported), f"missing: {line}\ngot: {reported}"


def test_several_problems_in_one_file_are_all_reported(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", "--json", "tests/bad_defs/several_problems_in_one_file"])

    payload = json.loads(capsys.readouterr().out)
    assert code == 1
    assert payload["valid"] is False
    assert len(payload["errors"]) == 6
    assert {e["path"] for e in payload["errors"]} >= {
        "parameters.rows.default",
        "steps[0].colour",
        "steps[0].args[0]",
        "steps[1].after[1]",
        "schedules[0].cron",
    }
    assert all(e["line"] for e in payload["errors"])


def test_the_whole_corpus_at_once_reports_every_case(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["validate", *(str(Path("tests/bad_defs") / c) for c in CASES)])

    err = capsys.readouterr().err
    assert code == 1
    for case in CASES:
        assert f"tests/bad_defs/{case}/" in err, case


def test_json_errors_carry_file_key_path_and_line(capsys: pytest.CaptureFixture[str]) -> None:
    main(["validate", "--json", "tests/bad_defs/unknown_key"])

    errors = json.loads(capsys.readouterr().out)["errors"]
    assert errors[0] == {
        "file": os.path.join("tests", "bad_defs", "unknown_key", "pipeline.yaml"),
        "line": 5,
        "path": "retries",
        "message": "unknown key",
    }
