"""The project starts the way the Pulumi CLI starts it: program, dynamic-provider host and the other
plugins, each with the working directory, interpreter and environment the CLI would give it.

The other suites start things directly (the harness with this interpreter, the provider host with
`sys.executable`); these tests go through :mod:`pulumi_cli`, the stand-in for the CLI's contract,
for the layout as committed, and show that the layout the project had before (`main: infra/`)
fails there for the reason a real `pulumi preview` failed.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import pytest

from infra.provider.props import PROVIDER_KEY
from tests.launch.pulumi_cli import (
    REPO_ROOT,
    Layout,
    PluginStartError,
    dynamic_provider_command,
    engine_env,
    language_host_python,
    plugin_python,
    run_program,
    this_interpreter_is_a_venv,
)
from tests.program.pulumi_config import stack_config
from tests.provider.grpc_host import ProviderHost

ENDPOINT_TYPE = "pulumi-python:dynamic/azureml:PipelineEndpoint"
IMAGE_TYPE = "docker-build:index:Image"

needs_project_venv = pytest.mark.skipif(
    not (REPO_ROOT / ".venv" / "bin" / "python").is_file() or not this_interpreter_is_a_venv(),
    reason="the launcher runs the project's .venv (make venv), as the CLI does",
)


def old_layout(tmp_path: Path) -> Layout:
    """A copy of the project's Pulumi.yaml with `main: infra/` (the layout before), beside a
    working `.venv` at the project root: the language host finds it, the plugin does not."""
    root = tmp_path / "project"
    (root / "infra").mkdir(parents=True)
    text = (REPO_ROOT / "Pulumi.yaml").read_text(encoding="utf-8")
    (root / "Pulumi.yaml").write_text(text + "main: infra/\n", encoding="utf-8")
    (root / ".venv" / "bin").mkdir(parents=True)
    shutil.copy(sys.executable, root / ".venv" / "bin" / "python")
    return Layout.of(root)


def test_the_committed_layout_runs_program_and_plugins_in_the_project_root() -> None:
    layout = Layout.of(REPO_ROOT)
    assert layout.program_dir == REPO_ROOT.resolve()
    assert (layout.program_dir / "__main__.py").is_file()
    assert layout.virtualenv == ".venv"


@pytest.mark.parametrize("platform", ["posix", "windows"])
def test_language_host_and_plugin_resolve_the_same_venv_on_every_platform(platform: Any) -> None:
    layout = Layout.of(REPO_ROOT)
    flavour = PureWindowsPath if platform == "windows" else PurePosixPath
    exe = "Scripts/python.exe" if platform == "windows" else "bin/python"
    expected = flavour(str(REPO_ROOT.resolve())) / ".venv" / exe
    assert language_host_python(layout, platform) == expected
    # The plugin resolves against its own working directory: the program folder.
    plugin_venv = flavour(str(layout.program_dir)) / str(layout.plugin_env_virtualenv())
    assert plugin_venv / exe == expected


def test_a_main_infra_layout_fails_to_start_the_dynamic_provider(tmp_path: Path) -> None:
    layout = old_layout(tmp_path)
    # The program itself would start: the language host resolves .venv against the root ...
    assert Path(language_host_python(layout)).is_file()
    # ... but the plugin, started in infra/, looks for infra/.venv and exits 1.
    with pytest.raises(PluginStartError, match=r"infra/\.venv does not appear") as failed:
        dynamic_provider_command(layout)
    assert failed.value.exit_code == 1


def test_the_plugin_puts_the_venv_first_on_path_and_drops_pythonhome() -> None:
    layout = Layout.of(REPO_ROOT)
    if not (REPO_ROOT / ".venv" / "bin" / "python").is_file():
        pytest.skip("no .venv at the project root (make venv)")
    env = engine_env(layout, {"PATH": "/usr/bin", "PYTHONHOME": "/elsewhere"})
    python, out = plugin_python(layout, env)
    assert python == PurePosixPath(REPO_ROOT.resolve() / ".venv" / "bin" / "python")
    assert out["PATH"].split(":")[0] == str(REPO_ROOT.resolve() / ".venv" / "bin")
    assert "PYTHONHOME" not in out
    assert out["PULUMI_RUNTIME_VIRTUALENV"] == ".venv"


@pytest.fixture(scope="module")
def dev_run() -> dict[str, Any]:
    """The dev stack's program, run as the language host runs it (once for the module)."""
    if not (REPO_ROOT / ".venv" / "bin" / "python").is_file() or not this_interpreter_is_a_venv():
        pytest.skip("the launcher runs the project's .venv (make venv), as the CLI does")
    stack_file = REPO_ROOT / "Pulumi.dev.yaml"
    done = run_program(Layout.of(REPO_ROOT), stack_file, stack_config(stack_file))
    assert done.returncode == 0, done.stderr
    record: dict[str, Any] = json.loads(done.stdout)
    return record


def test_the_program_runs_from_its_folder_with_config_from_the_environment(
    dev_run: dict[str, Any],
) -> None:
    # Config arrived through PULUMI_CONFIG (not the harness's own set_all_config): the dev
    # stack's differences are in what was registered.
    types = [r["type"] for r in dev_run["registrations"]]
    assert ENDPOINT_TYPE in types
    (cluster,) = [
        r
        for r in dev_run["registrations"]
        if r["type"].endswith(":machinelearningservices:Compute")
    ]
    assert cluster["inputs"]["properties"]["properties"]["scaleSettings"]["maxNodeCount"] == 2
    assert dev_run["azureml_modules"] == []


def test_the_docker_build_plugin_finds_the_context_from_the_program_folder(
    dev_run: dict[str, Any],
) -> None:
    layout = Layout.of(REPO_ROOT)
    (image,) = [r for r in dev_run["registrations"] if r["type"] == IMAGE_TYPE]
    context = layout.program_dir / image["inputs"]["context"]["location"]
    dockerfile = layout.program_dir / image["inputs"]["dockerfile"]["location"]
    assert context.is_dir() and dockerfile.is_file()


def _endpoint_inputs(dev_run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    registration = next(r for r in dev_run["registrations"] if r["type"] == ENDPOINT_TYPE)
    assert registration["inputs"][PROVIDER_KEY], "the program registers the pickled provider"
    return registration["urn"], registration["inputs"]


def _started_host(config: dict[str, str]) -> ProviderHost:
    argv, env, cwd = dynamic_provider_command(Layout.of(REPO_ROOT))
    host = ProviderHost(cwd, argv=argv, full_env=env)
    host.configure(config)
    return host


def test_preview_up_refresh_and_destroy_reach_a_provider_host_started_as_the_cli_starts_it(
    dev_run: dict[str, Any], tmp_path: Path
) -> None:
    # Local backend: the seam under test is the start-up, not Azure.
    config = {
        **stack_config(REPO_ROOT / "Pulumi.dev.yaml"),
        "azureml-pipelines:backend": "local",
        "azureml-pipelines:localStorePath": str(tmp_path / "store.sqlite"),
    }
    urn, inputs = _endpoint_inputs(dev_run)
    host = _started_host(config)
    try:
        checked = host.check(urn, {}, inputs)  # preview
        id_, outputs = host.create(urn, checked)  # up
        assert id_
        diff = host.diff(urn, id_, outputs, host.check(urn, checked, inputs))  # next preview
        assert not diff.diffs, list(diff.diffs)
    finally:
        host.close()
    # refresh and destroy unpickle the provider stored in the state in a fresh host process.
    host = _started_host(config)
    try:
        read_id, read_outputs = host.read(urn, id_, outputs)
        assert read_id == id_
        host.delete(urn, id_, read_outputs)
        # An endpoint cannot be deleted on Azure ML, only archived: it stays readable, disabled.
        archived_id, archived = host.read(urn, id_, read_outputs)
        assert archived_id == id_
        assert archived["status"] != read_outputs["status"], archived
    finally:
        host.close()
