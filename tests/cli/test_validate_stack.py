"""`amlpipe validate --stack`: what the Pulumi program refuses for a stack before registering any
resource, learnt locally. Where the program refuses, the program is run too (the real
`__main__.py` under the recording mocks, tests/program/mock_program.py) and both must agree."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from infra.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"
# A definition v1 and the local runner accept and Azure ML v2 cannot express (a fixture of the v2
# program tests): its step `Prep` is on line 7.
V2_BAD = REPO_ROOT / "tests" / "azureml_v2" / "v2_bad_defs" / "upper_step"
V2_BAD_FILES = {"steps/prep/prep.py": (V2_BAD / "steps" / "prep" / "prep.py").read_text()}
V2_BAD_PROBLEM = (
    "pipeline_defs/demo/pipeline.yaml:7: steps[0].name: Azure ML v2: node names are lowercase"
)
FACTORY_LISTS_DEMP = (
    "config:\n"
    "  azureml-pipelines:dataFactory:\n"
    "    name: adf-preflight\n"
    "    pipelines: [demo, demp]\n"
)
DEMP_PROBLEM = (
    "azureml-pipelines:dataFactory.pipelines[1]: unknown pipeline 'demp' "
    "(known pipelines: demo); did you mean 'demo'?"
)


def _repo_with_stack(make_repo: Callable[..., Path], stack_yaml: str, **definition: object) -> Path:
    """A tmp repository with the real Pulumi.yaml, one stack file `Pulumi.other.yaml`, the
    definition `make_repo` writes (its arguments: `definition`) in pipeline_defs/demo and the
    default image's build context (docker/Dockerfile)."""
    folder = make_repo(**definition)
    repo = folder.parents[1]
    (repo / "Pulumi.yaml").write_text((REPO_ROOT / "Pulumi.yaml").read_text())
    (repo / "Pulumi.other.yaml").write_text(stack_yaml)
    (repo / "docker").mkdir()
    (repo / "docker" / "Dockerfile").write_text("FROM scratch\n")
    return repo


def test_validate_with_a_stack_rejects_a_cluster_that_stack_lacks(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(
        make_repo,
        "config:\n"
        "  azureml-pipelines:clusters:\n"
        "    - {name: gpu-cluster, vmSize: NC6, maxNodes: 1}\n",
    )
    monkeypatch.chdir(repo)

    code = main(["validate", "--stack", "other", "pipeline_defs"])

    err = capsys.readouterr().err
    assert code == 1
    assert (
        "pipeline_defs/demo/pipeline.yaml:4: compute: unknown compute 'cpu-cluster' "
        "(known clusters: gpu-cluster)"
    ) in err


def test_validate_with_a_stack_accepts_names_the_stack_provides(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_with_stack(make_repo, "config:\n  azureml-pipelines:location: northeurope\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "pipeline_defs"]) == 0


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """A process of this checkout's code (not an installed copy) in `cwd`."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_validate_with_a_stack_refuses_a_colliding_stack_name_as_the_program_does(
    make_repo: Callable[..., Path],
) -> None:
    # feature_x and feature-x make the same resource names: the program refuses to run either.
    repo = _repo_with_stack(make_repo, "config: {}\n")
    for stack in ("feature_x", "feature-x"):
        (repo / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    stack_file = repo / "Pulumi.feature_x.yaml"

    program = _run(
        [str(REPO_ROOT / "tests" / "program" / "mock_program.py"), str(stack_file)], repo
    )
    cli = _run(["-m", "infra.cli", "validate", "--stack", "feature_x", "pipeline_defs"], repo)

    message = (
        "error: invalid stack configuration (1 problem(s)):\n"
        "  - stack 'feature_x': maps to the same resource names as stack 'feature-x' "
        "(Pulumi.feature-x.yaml); rename one of them\n"
    )
    assert (program.returncode, program.stderr) == (1, message)
    assert (cli.returncode, cli.stderr, cli.stdout) == (program.returncode, message, "")


def test_validate_with_a_stack_accepts_stack_names_that_do_not_collide(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    for stack in ("feature-x", "feature-y", "feature-x2"):
        (repo / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "feature-x", "pipeline_defs"]) == 0


def test_validate_with_an_unknown_stack_names_the_known_ones(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "prod"]) == 2
    assert "stacks: other" in capsys.readouterr().err


def test_validate_with_a_stack_file_that_is_not_yaml_names_the_file_and_line(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    (repo / "Pulumi.broken.yaml").write_text("config:\n  azureml-pipelines:location: [westeurope\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "broken", "pipeline_defs"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: Pulumi.broken.yaml line ")
    assert "YAML syntax error" in err and "Traceback" not in err


def _program(repo: Path, stack: str = "other") -> subprocess.CompletedProcess[str]:
    """The real program on `repo`'s stack file, under the recording mocks."""
    return _run([str(HARNESS), str(repo / f"Pulumi.{stack}.yaml")], repo)


def _validate(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`amlpipe validate` in its own process in `repo`, as a user or a hook runs it."""
    return _run(["-m", "infra.cli", "validate", *args], repo)


def test_validate_with_a_stack_refuses_an_unknown_factory_pipeline_as_the_program_does(
    make_repo: Callable[..., Path],
) -> None:
    repo = _repo_with_stack(make_repo, FACTORY_LISTS_DEMP)

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    message = f"error: invalid stack configuration (1 problem(s)):\n  - {DEMP_PROBLEM}\n"
    assert (program.returncode, program.stderr) == (1, message)
    assert (cli.returncode, cli.stderr, cli.stdout) == (1, message, "")


@pytest.mark.parametrize(
    ("images", "problem"),
    [
        (
            "{training: {context: dockr}}",
            "azureml-pipelines:images.training.context: build context {repo}/dockr is not a folder",
        ),
        (
            "{training: {context: docker, dockerfile: Dockerfile.gpu}}",
            "azureml-pipelines:images.training.dockerfile: {repo}/docker/Dockerfile.gpu does not "
            "exist",
        ),
    ],
)
def test_validate_with_a_stack_refuses_a_missing_image_context_as_the_program_does(
    make_repo: Callable[..., Path], images: str, problem: str
) -> None:
    # Found before any resource is registered, not when the image builds during `pulumi up`.
    repo = _repo_with_stack(make_repo, f"config:\n  azureml-pipelines:images: {images}\n")

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    expected = problem.format(repo=repo.resolve())
    message = f"error: invalid stack configuration (1 problem(s)):\n  - {expected}\n"
    assert (program.returncode, program.stderr) == (1, message)
    assert (cli.returncode, cli.stderr, cli.stdout) == (1, message, "")


def test_a_missing_image_context_is_refused_with_the_factory_problems_before_any_resource(
    make_repo: Callable[..., Path],
) -> None:
    # One pre-flight error for both: the program has not reached the workspace, the first
    # resource it registers (the image itself comes after the workspace and clusters).
    repo = _repo_with_stack(
        make_repo, FACTORY_LISTS_DEMP + "  azureml-pipelines:images: {training: {context: dockr}}\n"
    )

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    image = f"azureml-pipelines:images.training.context: build context {repo.resolve()}/dockr"
    message = (
        "error: invalid stack configuration (2 problem(s)):\n"
        f"  - {image} is not a folder\n  - {DEMP_PROBLEM}\n"
    )
    assert (program.returncode, program.stderr) == (1, message)
    assert (cli.returncode, cli.stderr) == (1, message)


def test_validate_with_a_stack_refuses_a_factory_pipeline_that_opts_out(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.definitions.conftest import TWO_STEP_PIPELINE

    repo = _repo_with_stack(
        make_repo,
        "config:\n  azureml-pipelines:dataFactory: {name: adf-preflight, pipelines: [demo]}\n",
        yaml_text=TWO_STEP_PIPELINE + "data_factory: {enabled: false}\n",
    )
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other"]) == 1
    assert capsys.readouterr().err == (
        "error: invalid stack configuration (1 problem(s)):\n"
        "  - azureml-pipelines:dataFactory.pipelines[0]: pipeline 'demo' opts out of Data "
        "Factory in its definition (data_factory.enabled: false)\n"
    )


def test_validate_with_a_v2_stack_locates_what_v2_cannot_express_as_the_program_does(
    make_repo: Callable[..., Path],
) -> None:
    repo = _repo_with_stack(
        make_repo,
        "config:\n  azureml-pipelines:api: v2\n",
        yaml_text=(V2_BAD / "pipeline.yaml").read_text(),
        files=V2_BAD_FILES,
    )

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    assert program.returncode == 1 and V2_BAD_PROBLEM in program.stderr
    assert cli.returncode == 1
    (line, count) = cli.stderr.splitlines()
    assert line.startswith(V2_BAD_PROBLEM) and line in program.stderr
    assert count == "1 problem found"


def test_validate_of_the_same_definition_without_v2_accepts_it(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The v2 rules apply to stacks that publish with v2 only (api or apiPrevious).
    repo = _repo_with_stack(
        make_repo,
        "config: {}\n",
        yaml_text=(V2_BAD / "pipeline.yaml").read_text(),
        files=V2_BAD_FILES,
    )
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other"]) == 0
    (repo / "Pulumi.other.yaml").write_text(
        "config:\n  azureml-pipelines:api: v1\n  azureml-pipelines:apiPrevious: v2\n"
    )
    assert main(["validate", "--stack", "other"]) == 1


def test_validate_with_a_stack_accepts_a_v2_stack_whose_factory_lists_existing_pipelines(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(
        make_repo,
        "config:\n"
        "  azureml-pipelines:api: v2\n"
        "  azureml-pipelines:dataFactory: {name: adf-preflight, pipelines: [demo]}\n",
    )
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other"]) == 0
    assert capsys.readouterr().out.startswith("ok demo (pipeline_defs/demo/pipeline.yaml)")


def test_validate_with_a_stack_and_no_paths_checks_the_stacks_pipeline_defs(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stack deploys defs/ (a valid definition); pipeline_defs/ holds a broken one it never
    # loads. Run from a subfolder: the folder is the project's, not the working directory's.
    repo = _repo_with_stack(make_repo, "config:\n  azureml-pipelines:pipelineDefs: defs\n")
    (repo / "pipeline_defs").rename(repo / "defs")
    project = (repo / "Pulumi.yaml").read_text()
    make_repo(yaml_text="name: [\n", root=repo)
    (repo / "Pulumi.yaml").write_text(project)
    (repo / "sub").mkdir()
    monkeypatch.chdir(repo / "sub")

    assert main(["validate", "--stack", "other"]) == 0
    assert capsys.readouterr().out.startswith("ok demo (../defs/demo/pipeline.yaml)")
    # Explicit paths still win.
    assert main(["validate", "--stack", "other", "../pipeline_defs"]) == 1
    assert "../pipeline_defs/demo/pipeline.yaml:2: <document>: YAML syntax error" in (
        capsys.readouterr().err
    )


def test_validate_with_a_stack_and_some_paths_checks_the_factory_for_those_only(
    make_repo: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `validate --stack other pipeline_defs/demo` sees one definition of the stack's folder: a
    # listed pipeline missing from it may be in another folder, so it is not reported.
    repo = _repo_with_stack(
        make_repo,
        "config:\n  azureml-pipelines:dataFactory: {name: adf-preflight, pipelines: [demo, x]}\n",
    )
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "pipeline_defs/demo"]) == 0
    # The stack's folder given explicitly is all of it again.
    assert main(["validate", "--stack", "other", "pipeline_defs"]) == 1
    assert main(["validate", "--stack", "other", "./pipeline_defs/"]) == 1


def test_validate_json_with_a_stack_lists_config_and_definition_problems_in_one_shape(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(
        make_repo,
        FACTORY_LISTS_DEMP.replace("config:\n", "config:\n  azureml-pipelines:api: v2\n"),
        yaml_text=(V2_BAD / "pipeline.yaml").read_text().replace("upper-step", "demo"),
        files=V2_BAD_FILES,
    )
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["valid"] is False
    assert payload["pipelines"] == ["demo"]
    config, definition = payload["errors"]
    # Each error: the file, the 1-based line, the key path as users write it, the message.
    assert config == {
        "file": "Pulumi.other.yaml",
        "line": 5,  # pipelines: [demo, demp]
        "path": "azureml-pipelines:dataFactory.pipelines[1]",
        "message": "unknown pipeline 'demp' (known pipelines: demo); did you mean 'demo'?",
    }
    assert definition["file"] == "pipeline_defs/demo/pipeline.yaml"
    assert (definition["line"], definition["path"]) == (7, "steps[0].name")
    assert definition["message"].startswith("Azure ML v2: node names are lowercase")


def test_validate_with_a_stack_reports_config_and_v2_problems_together(
    make_repo: Callable[..., Path],
) -> None:
    # Both kinds at once, in the program (one error) and in validate.
    repo = _repo_with_stack(
        make_repo,
        FACTORY_LISTS_DEMP.replace("config:\n", "config:\n  azureml-pipelines:api: v2\n"),
        yaml_text=(V2_BAD / "pipeline.yaml").read_text().replace("upper-step", "demo"),
        files=V2_BAD_FILES,
    )

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    config = f"error: invalid stack configuration (1 problem(s)):\n  - {DEMP_PROBLEM}\n"
    v2 = f"{V2_BAD_PROBLEM}: rename step 'Prep' to 'prep' (references to it too)"
    assert (program.returncode, program.stderr) == (
        1,
        f"{config}1 problem in pipeline definitions:\n  {v2}\n",
    )
    # validate: the config problems word for word, then the definitions as it lists them.
    assert (cli.returncode, cli.stderr) == (1, f"{config}{v2}\n1 problem found\n")


@pytest.mark.parametrize(
    ("make_folder", "problem"),
    [
        (lambda defs: None, "no such file or folder"),
        (lambda defs: defs.mkdir(), "no pipeline.yaml found in this folder"),
    ],
    ids=["missing", "empty"],
)
def test_validate_with_a_factory_stack_and_no_definitions_reports_the_folder_as_the_program(
    make_repo: Callable[..., Path], make_folder: Callable[[Path], None], problem: str
) -> None:
    # No definitions at all: the folder is the problem, not the pipelines the factory lists.
    repo = _repo_with_stack(
        make_repo, FACTORY_LISTS_DEMP + "  azureml-pipelines:pipelineDefs: nothing-here\n"
    )
    make_folder(repo / "nothing-here")

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    located = f"nothing-here: <document>: {problem}"
    assert program.returncode == 1 and f"\n  {located}" in program.stderr
    assert (cli.returncode, cli.stderr) == (1, f"{located}\n1 problem found\n")


def test_validate_with_a_stack_reports_definition_problems_before_the_factory_ones(
    make_repo: Callable[..., Path],
) -> None:
    # A definition that does not load may be the very pipeline the factory lists: as the
    # program does, validate reports the definitions' problems and stops there.
    repo = _repo_with_stack(make_repo, FACTORY_LISTS_DEMP, yaml_text="name: demo\n")

    program = _program(repo)
    cli = _validate(repo, "--stack", "other")

    assert program.returncode == cli.returncode == 1
    assert "dataFactory" not in program.stderr + cli.stderr
    problems = cli.stderr.splitlines()[:-1]
    assert problems and all(f"\n  {p}\n" in program.stderr + "\n" for p in problems)
    assert cli.stderr.endswith(f"\n{len(problems)} problems found\n")


def _not_text(stack_file: Path) -> None:
    stack_file.write_bytes(b"config:\n  azureml-pipelines:location: \xff\xfe\n")


def _unreadable(stack_file: Path) -> None:
    # A regular file whose read fails for any user, root included: address 0 of the reading
    # process's own memory (EIO).
    stack_file.unlink()
    stack_file.symlink_to("/proc/self/mem")


def _a_folder(stack_file: Path) -> None:
    # It is one of the project's stacks by its name; saying there is no such stack would be false.
    stack_file.unlink()
    stack_file.mkdir()


@pytest.mark.parametrize(
    ("spoil", "expected"),
    [
        (_not_text, r"error: Pulumi\.other\.yaml line 2: [^\n]*UTF-8[^\n]*\n"),
        (
            _unreadable,
            r"error: Pulumi\.other\.yaml: cannot read stack file: Input/output error\n",
        ),
        (
            _a_folder,
            r"error: Pulumi\.other\.yaml: is a folder, not a file: "
            r"a stack file must be a YAML file\n",
        ),
    ],
    ids=["not text", "cannot be read", "a folder"],
)
def test_validate_with_a_stack_file_that_cannot_be_used_names_the_file(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    spoil: Callable[[Path], None],
    expected: str,
) -> None:
    repo = _repo_with_stack(make_repo, "config: {}\n")
    spoil(repo / "Pulumi.other.yaml")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other"]) == 1
    # One located line, no traceback.
    assert re.fullmatch(expected, capsys.readouterr().err)


def test_validate_json_with_a_stack_lists_its_settings_problems_in_the_same_shape(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(
        make_repo,
        "config:\n"
        "  azureml-pipelines:clusters:\n"
        "    - name: cpu-cluster\n"
        "      vmSize: Standard_DS3_v2\n"
        "      maxNodes: 0\n"
        "  colour: red\n",
    )
    (repo / "Pulumi.other_.yaml").write_text("config: {}\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert (payload["valid"], payload["pipelines"]) == (False, [])
    max_nodes, colour, name = payload["errors"]
    assert max_nodes == {
        "file": "Pulumi.other.yaml",
        "line": 5,
        "path": "azureml-pipelines:clusters[0].maxNodes",
        "message": "0 is too small; allowed values: integers >= 1",
    }
    # Written without the namespace, as Pulumi accepts it; located all the same.
    assert (colour["file"], colour["line"], colour["path"]) == (
        "Pulumi.other.yaml",
        6,
        "azureml-pipelines:colour",
    )
    assert colour["message"].startswith("unknown key; known keys: api, ")
    # About the stack as a whole: the file, as a whole-file definition problem is shown.
    assert name == {
        "file": "Pulumi.other.yaml",
        "line": None,
        "path": "<document>",
        "message": "stack 'other': maps to the same resource names as stack 'other_' "
        "(Pulumi.other_.yaml); rename one of them",
    }


def test_validate_json_with_a_stack_file_that_is_not_yaml_lists_it_in_the_same_shape(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = _repo_with_stack(make_repo, "config:\n  azureml-pipelines:location: [westeurope\n")
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert (error["file"], error["line"], error["path"]) == ("Pulumi.other.yaml", 3, "<document>")
    assert error["message"].startswith("YAML syntax error")


def test_validate_json_locates_a_project_default_in_pulumi_yaml(
    make_repo: Callable[..., Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The stack file does not set dataFactory: the value (and the problem) is Pulumi.yaml's.
    repo = _repo_with_stack(make_repo, "config: {}\n")
    project = (repo / "Pulumi.yaml").read_text()
    default = "  dataFactory:\n    type: object\n    default: {}\n"
    assert default in project
    (repo / "Pulumi.yaml").write_text(
        project.replace(
            default,
            "  dataFactory:\n    type: object\n    default:\n      name: adf-preflight\n"
            "      pipelines:\n        - demp\n",
        )
    )
    line = (repo / "Pulumi.yaml").read_text().splitlines().index("        - demp") + 1
    monkeypatch.chdir(repo)

    assert main(["validate", "--stack", "other", "--json"]) == 1
    (error,) = json.loads(capsys.readouterr().out)["errors"]
    assert (error["file"], error["line"], error["path"]) == (
        "Pulumi.yaml",
        line,
        "azureml-pipelines:dataFactory.pipelines[0]",
    )
