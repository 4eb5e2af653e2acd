"""Hostile and huge definitions: bounded, located errors, never a hang or a traceback.

The corpus (tests/bad_defs) holds the small cases; this file builds the ones that are large,
machine-made or need a file system state (folders named pipeline.yaml, devices, repositories).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from infra.cli import main
from infra.definitions import load_definitions
from infra.definitions.graph import find_cycle
from infra.definitions.yamlsource import (
    MAX_ALIAS_VALUES,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    YamlProblem,
    parse_yaml,
)

HEADER = "name: {name}\nexperiment: exp\ncompute: cpu-cluster\n"
ONE_STEP = "steps:\n  - {name: prep, kind: python, code: code, script: prep.py}\n"


def write_pipeline(folder: Path, body: str = ONE_STEP, name: str | None = None) -> Path:
    """A pipeline folder with a `code/prep.py`; returns the pipeline.yaml path."""
    (folder / "code").mkdir(parents=True, exist_ok=True)
    (folder / "code" / "prep.py").write_text("print('prep')\n")
    file = folder / "pipeline.yaml"
    file.write_text(HEADER.format(name=name or folder.name) + body)
    return file


def chain(steps: int, cycle: bool = False) -> str:
    lines = ["steps:"]
    for index in range(steps):
        after = [f"s{index - 1}"] if index else ([f"s{steps - 1}"] if cycle else [])
        lines.append(
            f"  - {{name: s{index}, kind: command, code: code, command: [echo], after: {after}}}"
        )
    return "\n".join(lines) + "\n"


def test_a_file_over_the_size_limit_is_rejected_before_parsing(tmp_path: Path) -> None:
    file = write_pipeline(tmp_path / "repo" / "big")
    with file.open("a") as handle:
        line = "# " + "x" * 1000 + "\n"
        for _ in range(MAX_FILE_BYTES // len(line) + 1):
            handle.write(line)

    definitions = load_definitions([file.parent], repo_root=tmp_path / "repo")

    (error,) = definitions.errors
    assert error.file.endswith("pipeline.yaml") and error.line is None
    assert f"definitions are limited to {MAX_FILE_BYTES}" in error.message


def test_comments_just_below_the_limit_parse(tmp_path: Path) -> None:
    comment = "# " + "y" * 200 + "\n"
    text = HEADER.format(name="p") + comment * ((MAX_FILE_BYTES - 200) // len(comment)) + ONE_STEP

    doc = parse_yaml(text)

    assert doc.data["name"] == "p"
    assert doc.line_of(("steps", 0, "script")) == text.count("\n")


def test_an_alias_bomb_stops_at_the_bound_with_its_line() -> None:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 12)]

    with pytest.raises(YamlProblem, match=f"more than {MAX_ALIAS_VALUES} values") as caught:
        parse_yaml("\n".join(lines))

    # l1 and l2 reach 110 + 1110 values; the eighth alias in l3 (1111 each) passes 10,000.
    assert caught.value.line == 4 and caught.value.path == ("l3", 7)


def test_aliases_within_the_bound_and_merge_keys_still_work() -> None:
    doc = parse_yaml(
        textwrap.dedent(
            """\
            base: &base {kind: python, code: code, script: prep.py}
            steps:
              - {<<: *base, name: a}
              - <<: *base
                name: b
                script: other.py
            """
        )
    )

    assert doc.data["steps"][0] == {
        "name": "a",
        "kind": "python",
        "code": "code",
        "script": "prep.py",
    }
    assert doc.data["steps"][1]["script"] == "other.py"
    assert doc.line_of(("steps", 1, "name")) == 5


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 300, 100_000])
def test_deep_nesting_is_a_located_error_not_a_recursion_error(depth: int) -> None:
    # libyaml may stop first (its own limit is 1000 levels); either way: one located problem.
    with pytest.raises(YamlProblem, match=r"nested more than|nesting depth") as caught:
        parse_yaml("args: " + "[" * depth + "]" * depth)

    assert caught.value.line == 1


def test_nesting_at_the_limit_is_accepted() -> None:
    depth = MAX_DEPTH - 1  # the document's own mapping is the first level
    assert parse_yaml("a: " + "[" * depth + "]" * depth).data["a"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: yes", "yes"),
        ("a: on", "on"),
        ("a: No", "No"),
        ("a: 0o17", 15),
        ("a: 0x1F", 31),
        ("a: 017", 17),
        ("a: 1_000", "1_000"),
        ("a: 2026-01-05T06:00:00", "2026-01-05T06:00:00"),
        ("a: 1.5e3", 1500.0),
        ("a: ~", None),
        ("a: !!str 12", "12"),
        ("a: ! 12", "12"),
        ("a: '12'", "12"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    assert parse_yaml(text).data["a"] == value


def test_a_thousand_step_chain_is_valid_and_a_thousand_step_cycle_is_reported(
    tmp_path: Path,
) -> None:
    good = write_pipeline(tmp_path / "repo" / "chain", chain(1000))
    bad = write_pipeline(tmp_path / "repo" / "cycle", chain(1000, cycle=True))

    definitions = load_definitions([good.parent, bad.parent], repo_root=tmp_path / "repo")

    assert [p.spec.name for p in definitions.pipelines] == ["chain"]
    (error,) = definitions.errors
    assert error.path[0] == "steps" and error.line == 5 + int(error.path[1])
    assert error.message.startswith("dependency cycle: ") and "s999 -> s0" in error.message


def test_find_cycle_handles_a_hundred_thousand_steps() -> None:
    deps = {f"s{i}": {f"s{i - 1}"} if i else set() for i in range(100_000)}
    assert find_cycle(deps) is None
    deps["s0"] = {"s99999"}
    cycle = find_cycle(deps)
    assert cycle is not None and len(cycle) == 100_000


def test_a_folder_named_pipeline_yaml_is_an_error_not_skipped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    defs = tmp_path / "defs"
    write_pipeline(defs / "good")
    (defs / "odd" / "pipeline.yaml").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)

    code = main(["validate", "defs"])

    err = capsys.readouterr().err
    assert code == 1
    assert "defs/odd/pipeline.yaml: <document>: is a folder, not a file" in err


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "fifo"])
def test_a_device_or_pipe_as_pipeline_yaml_is_refused_without_reading_it(
    tmp_path: Path, target: str
) -> None:
    folder = tmp_path / "defs" / "dev"
    folder.mkdir(parents=True)
    if target == "fifo":
        os.mkfifo(folder / "pipeline.yaml")
    else:
        (folder / "pipeline.yaml").symlink_to(target)

    (error,) = load_definitions([tmp_path / "defs"]).errors

    assert "not a regular file" in error.message


def test_a_symlink_loop_as_pipeline_yaml_is_reported(tmp_path: Path) -> None:
    folder = tmp_path / "defs" / "loop"
    folder.mkdir(parents=True)
    (folder / "pipeline.yaml").symlink_to(folder / "pipeline.yaml")

    (error,) = load_definitions([tmp_path / "defs"]).errors

    assert "pipeline.yaml" in error.file and "cannot read definition" in error.message


@pytest.mark.parametrize("bad", ["nul\0byte", "x" * 5000, "missing/deeper"])
def test_unusable_paths_on_the_command_line_are_one_line_errors(
    bad: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["validate", bad])

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "Traceback" not in "\n".join(err)
    assert any(
        reason in err[0]
        for reason in ("NUL byte", "name too long for the file system", "no such file or folder")
    )


def test_outside_a_repository_the_root_is_the_definitions_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Issue 10 item 9: no Pulumi.yaml or .git above; the second pipeline's code must not be
    # judged against the first pipeline's folder, and its missing script must be reported.
    assert not any((p / ".git").exists() or (p / "Pulumi.yaml").exists() for p in tmp_path.parents)
    defs = tmp_path / "some" / "folder"
    write_pipeline(defs / "first")
    second = write_pipeline(defs / "second")
    (second.parent / "code" / "prep.py").unlink()
    (defs / "shared").mkdir()
    (defs / "shared" / "util.py").write_text("X = 1\n")
    write_pipeline(
        defs / "third", "steps:\n  - {name: a, kind: python, code: ../shared, script: util.py}\n"
    )

    code = main(["validate", str(defs)])

    err = capsys.readouterr().err
    assert code == 1
    assert "escapes the repository" not in err
    assert "second/pipeline.yaml:5: steps[0].script: script 'prep.py' not found" in err
    assert err.count("problem") == 1


def test_outside_a_repository_code_above_the_definitions_folder_escapes(tmp_path: Path) -> None:
    defs = tmp_path / "defs"
    write_pipeline(defs / "first")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.py").write_text("")
    write_pipeline(
        defs / "second",
        "steps:\n  - {name: a, kind: python, code: ../../elsewhere, script: x.py}\n",
    )

    (error,) = load_definitions([defs]).errors

    assert "escapes the repository" in error.message and error.path == ("steps", 0, "code")


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("int", "١٢٣"),
        ("int", "\uff11\uff12"),  # fullwidth digits
        ("int", "1_000"),
        ("int", " 12"),
        ("int", "9" * 5000),
        ("float", "nan"),
        ("float", "-inf"),
        ("float", "1e999"),
        ("float", "\u0663.\u0665"),  # Arabic-Indic digits
        ("bool", "maybe"),
    ],
)
def test_run_param_values_are_read_strictly(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    text: str,
) -> None:
    body = f"parameters:\n  value: {{type: {kind}, default: {'true' if kind == 'bool' else 1}}}\n"
    write_pipeline(tmp_path / "defs" / "p", body + ONE_STEP, name="p")
    monkeypatch.chdir(tmp_path)

    code = main(["run", "p", "--defs", "defs", "--executor", "process", "--param", f"value={text}"])

    err = capsys.readouterr().err
    assert code == 2
    assert f"is not a valid {kind}" in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    ("kind", "text", "value"), [("int", "-12", -12), ("float", "2.5e-3", 0.0025)]
)
def test_plain_param_values_are_still_accepted(kind: str, text: str, value: object) -> None:
    from infra.definitions.model import ParameterType
    from infra.definitions.validate import parse_parameter_text

    assert parse_parameter_text(ParameterType(kind), text) == value
