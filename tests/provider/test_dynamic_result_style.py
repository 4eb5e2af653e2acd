"""Dynamic providers build their Check and Diff results with keyword arguments: the positional
order of `DiffResult` (changes, replaces, stables, delete_before_replace) is easy to get wrong
silently, e.g. a replace list landing in `stables`, which the engine ignores."""

from __future__ import annotations

import ast
from pathlib import Path

INFRA = Path(__file__).resolve().parents[2] / "infra"
KEYWORD_ONLY = {"CheckResult", "DiffResult"}


def _positional_calls(source: str) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in KEYWORD_ONLY and node.args:
                found.append((node.lineno, name))
    return found


def test_check_and_diff_results_are_built_with_keyword_arguments() -> None:
    offenders = [
        f"{path.relative_to(INFRA.parent)}:{line}: {name}"
        for path in sorted(INFRA.rglob("*.py"))
        for line, name in _positional_calls(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_check_finds_a_positional_diff_result() -> None:
    assert _positional_calls("DiffResult(True, [], [], False)") == [(1, "DiffResult")]
    assert _positional_calls("dynamic.CheckResult(news, [])") == [(1, "CheckResult")]
    assert _positional_calls("DiffResult(changes=True, replaces=[])") == []
