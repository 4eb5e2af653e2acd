"""Where the project is: one answer for every process that reads project files.

The Pulumi CLI starts the program and every provider plugin (azure-native, docker-build and the
Python dynamic-provider host) in the program folder, and `amlpipe` runs wherever the user is (see
shared PULUMI_CLI.md). Paths in configuration (`pipelineDefs`, `localStorePath`, image contexts)
are relative to the project root, the folder holding `Pulumi.yaml`; resolving them against the
working directory would make each process read a different file when one of them runs in a
subfolder. The root is the nearest folder at or above the working directory that holds
`Pulumi.yaml` (every folder of a project gives the same answer), else the checkout this package
was installed from (`pip install -e .`), for tools started outside the project.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_FILE = "Pulumi.yaml"


class ProjectRootError(RuntimeError):
    """No `Pulumi.yaml` was found where the project should be."""


def project_root() -> Path:
    """The folder holding `Pulumi.yaml` (absolute)."""
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / PROJECT_FILE).is_file():
            return folder
    package_parent = Path(__file__).resolve().parent.parent
    if (package_parent / PROJECT_FILE).is_file():
        return package_parent
    raise ProjectRootError(
        f"no {PROJECT_FILE} at or above {cwd}, nor in {package_parent}: run from the project "
        "checkout, or install the project from it (`pip install -e .`)"
    )


def project_path(configured: str | Path) -> Path:
    """A configured path, relative to the project root unless absolute."""
    path = Path(configured)
    return path if path.is_absolute() else project_root() / path


def portable(path: Path) -> str:
    """`path` relative to the project root, POSIX style: the form stored in resource inputs, so
    state is the same on every machine and checkout location (an absolute path would differ
    between a laptop and CI and show up as a change)."""
    return path.resolve().relative_to(project_root()).as_posix()
