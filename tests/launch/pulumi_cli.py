"""A stand-in for how the Pulumi CLI starts this project's processes (it cannot be installed here).

The contract, read from the CLI's source and its Python dynamic-provider plugin script (details and
versions in shared PULUMI_CLI.md):

- The program folder is `main:` from `Pulumi.yaml`, else the project root. The language host runs
  the program there, with the interpreter of `runtime.options.virtualenv` resolved against the
  **project root**, and passes the stack config as the `PULUMI_CONFIG` environment variable.
- Every resource plugin (azure-native, docker-build, the Python dynamic-provider host) starts in
  the same program folder. docker-build resolves relative build paths against it.
- The dynamic-provider plugin is a shell script (`.cmd` on Windows). It receives the virtualenv
  option as `PULUMI_RUNTIME_VIRTUALENV` exactly as written, makes a relative value absolute
  against **its own working directory** (the program folder), needs `<venv>/bin/python`
  (`Scripts\\python.exe` on Windows), puts the venv's bin folder first on `PATH`, unsets
  `PYTHONHOME` and runs `<python> -u -m pulumi.dynamic`; a missing interpreter ends it with exit
  code 1 before any Python runs. Without the option it runs `${PULUMI_PYTHON_CMD:-python3}` (for
  the `uv` toolchain the option defaults to `.venv`).
- The host prints its gRPC port on stdout; the engine connects to it.

This module decides the same things from the committed `Pulumi.yaml`, so a layout that the CLI
would fail to start fails here too, for the same reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath, PureWindowsPath
from typing import Literal

from ruamel.yaml import YAML

Platform = Literal["posix", "windows"]
REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"


class PluginStartError(RuntimeError):
    """The dynamic-provider plugin would exit before starting Python (its exit code 1)."""

    exit_code = 1


@dataclass(frozen=True)
class Layout:
    """What `Pulumi.yaml` tells the CLI about where things run."""

    root: Path
    main: str | None
    virtualenv: str | None
    toolchain: str | None

    @classmethod
    def of(cls, root: Path) -> Layout:
        project = YAML(typ="safe").load((root / "Pulumi.yaml").read_text(encoding="utf-8"))
        runtime = project.get("runtime")
        options = (runtime.get("options") or {}) if isinstance(runtime, dict) else {}
        return cls(
            root=root,
            main=project.get("main"),
            virtualenv=options.get("virtualenv"),
            toolchain=options.get("toolchain"),
        )

    @property
    def program_dir(self) -> Path:
        """Working directory of the program and of every plugin the engine starts."""
        return (self.root / self.main).resolve() if self.main else self.root.resolve()

    def plugin_env_virtualenv(self) -> str | None:
        """`PULUMI_RUNTIME_VIRTUALENV` as the engine hands it to the plugin: the option verbatim
        (the `uv` toolchain defaults it to `.venv`)."""
        if self.virtualenv is not None:
            return str(self.virtualenv)
        return ".venv" if self.toolchain == "uv" else None


def _interpreter(venv: PurePath, platform: Platform) -> PurePath:
    return venv / ("Scripts/python.exe" if platform == "windows" else "bin/python")


def language_host_python(layout: Layout, platform: Platform = "posix") -> PurePath:
    """The interpreter the language host runs the program with: the venv against the project
    root."""
    assert layout.virtualenv, "this project always names its virtualenv"
    return _interpreter(_absolute(layout.virtualenv, layout.root, platform), platform)


def plugin_python(
    layout: Layout, env: dict[str, str], platform: Platform = "posix"
) -> tuple[PurePath, dict[str, str]]:
    """The interpreter and environment the dynamic-provider plugin script would run, or
    :class:`PluginStartError` with the script's complaint."""
    venv_opt = env.get("PULUMI_RUNTIME_VIRTUALENV")
    if not venv_opt:
        return PurePosixPath(env.get("PULUMI_PYTHON_CMD") or "python3"), dict(env)
    venv = _absolute(venv_opt.rstrip("/\\"), layout.program_dir, platform)
    python = _interpreter(venv, platform)
    if not Path(python).is_file():
        raise PluginStartError(
            f"The 'virtualenv' option in Pulumi.yaml is set to {venv_opt!r}, but {venv} "
            "does not appear to be a virtual environment."
        )
    out = {k: v for k, v in env.items() if k != "PYTHONHOME"}
    bin_dir = python.parent
    out["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    return python, out


def _absolute(value: str, against: Path, platform: Platform) -> PurePath:
    flavour: type[PurePath] = PureWindowsPath if platform == "windows" else PurePosixPath
    path = flavour(value)
    return path if path.is_absolute() else flavour(str(against)) / path


def engine_env(layout: Layout, base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the engine gives a plugin: the user's, plus the runtime options."""
    env = dict(os.environ if base is None else base)
    venv = layout.plugin_env_virtualenv()
    if venv is not None:
        env["PULUMI_RUNTIME_VIRTUALENV"] = venv
    if layout.toolchain:
        env["PULUMI_RUNTIME_TOOLCHAIN"] = str(layout.toolchain)
    return env


def dynamic_provider_command(layout: Layout) -> tuple[list[str], dict[str, str], Path]:
    """argv, environment and working directory of the dynamic-provider host, as the CLI and its
    plugin script would start it (raises :class:`PluginStartError` where the script exits 1)."""
    python, env = plugin_python(layout, engine_env(layout))
    return [str(python), "-u", "-m", "pulumi.dynamic"], env, layout.program_dir


def run_program(
    layout: Layout, stack_file: Path, config: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the program as the language host would (its venv's interpreter, the program folder as
    working directory, config in `PULUMI_CONFIG`), under the recording mocks of
    tests/program/mock_program.py, which print the run as JSON."""
    python = Path(language_host_python(layout))
    if not python.is_file():
        raise PluginStartError(f"language host: no interpreter at {python}")
    env = engine_env(layout)
    env["PULUMI_CONFIG"] = json.dumps(config)
    env["PULUMI_PROJECT"] = str(
        YAML(typ="safe").load((layout.root / "Pulumi.yaml").read_text())["name"]
    )
    env["PULUMI_STACK"] = stack_file.name[len("Pulumi.") : -len(".yaml")]
    return subprocess.run(
        [str(python), "-u", str(HARNESS), "--program", ".", str(stack_file)],
        cwd=layout.program_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def this_interpreter_is_a_venv() -> bool:
    """Whether the test runs from a virtualenv (the launcher needs the project's `.venv`)."""
    return sys.prefix != sys.base_prefix
