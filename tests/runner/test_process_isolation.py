"""`--executor process` keeps as close to the container contract as the OS allows: a step runs in a
read-only copy of its code folder, so nothing it writes there reaches the code (or the pipeline's
hash); a run folder inside a code folder is refused before anything runs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from infra.definitions.hashing import pipeline_digest
from infra.definitions.loader import load_definitions

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - name: meddle
    kind: python
    code: code
    script: meddle.py
    args: ['${{outputs.out}}']
    outputs: [out]
"""
# Tries to change its own code folder and reports what happened.
MEDDLE = """\
import json, os, pathlib, sys
report = {"cwd": os.getcwd(), "script": os.path.abspath(__file__)}
for name, action in [("new_file", lambda: open("written-into-code", "w").write("x")),
                     ("edit_script", lambda: open("meddle.py", "a").write("# changed")),
                     ("edit_nested", lambda: open("pkg/data.txt", "w").write("changed"))]:
    try:
        action()
        report[name] = "written"
    except PermissionError:
        report[name] = "refused"
(pathlib.Path(sys.argv[1]) / "report.json").write_text(json.dumps(report))
"""


def test_a_step_cannot_change_its_code_folder_or_the_pipeline_hash(
    make_pipeline: Any, tmp_path: Path, cli: Any
) -> None:
    defs = make_pipeline(PIPELINE, {"code/meddle.py": MEDDLE, "code/pkg/data.txt": "original"})
    code = defs / "demo" / "code"
    before = pipeline_digest(load_definitions([defs]).by_name("demo")).digest
    files_before = {p: p.read_bytes() for p in code.rglob("*") if p.is_file()}
    run_dir = tmp_path / "run"
    result = cli("run", "demo", "--defs", defs, "--executor", "process", "--run-dir", run_dir)
    assert result.code == 0, result.output
    report = json.loads((run_dir / "outputs/meddle/out/report.json").read_text())
    # The step ran in a copy of its code folder, not in the folder itself ...
    assert Path(report["cwd"]) != code and Path(report["script"]).parent == Path(report["cwd"])
    # ... which is read-only where permissions bind (root ignores them: then the copy takes it) ...
    expected = "written" if os.geteuid() == 0 else "refused"
    assert {report[k] for k in ("new_file", "edit_script", "edit_nested")} == {expected}
    # ... so the code folder and the hash are untouched, and the copy is gone after the run.
    assert {p: p.read_bytes() for p in code.rglob("*") if p.is_file()} == files_before
    assert pipeline_digest(load_definitions([defs]).by_name("demo")).digest == before
    assert not Path(report["cwd"]).exists()


def test_a_run_folder_inside_a_code_folder_is_refused_before_anything_runs(
    make_pipeline: Any, cli: Any
) -> None:
    defs = make_pipeline(PIPELINE, {"code/meddle.py": MEDDLE, "code/pkg/data.txt": "x"})
    for run_dir in (defs / "demo" / "code" / "runs" / "r1", defs / "demo" / "code" / "pkg" / "r"):
        result = cli("run", "demo", "--defs", defs, "--executor", "process", "--run-dir", run_dir)
        assert result.code == 2, result.output
        assert "is inside the code folder of step 'meddle'" in result.stderr
        assert "choose a --run-dir outside every code folder" in result.stderr
    assert not (defs / "demo" / "code" / "runs").exists()
    assert not (defs / "demo" / "code" / "pkg" / "r").exists()
