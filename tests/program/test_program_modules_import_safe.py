"""Program modules have no side effects at import: importing them outside a Pulumi run (no engine,
no mocks) must neither register resources nor read config, and must not pull in azureml."""

from __future__ import annotations

import subprocess
import sys

from tests.program.pulumi_config import REPO_ROOT

MODULES = [
    "infra.settings",
    "infra.naming",
    "infra.paths",
    "infra.components",
    "infra.program",
]


def test_program_modules_import_without_an_engine_and_without_azureml() -> None:
    code = (
        "import sys\n" + "".join(f"import {m}\n" for m in MODULES) + "import pulumi.runtime as s\n"
        "assert s.get_root_resource() is None, 'a resource was registered at import'\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'azureml']\n"
        "assert not loaded, loaded\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
