"""A venv for running the Pulumi program with another Pulumi SDK than the pinned one.

Usage: `.venv/bin/python -m bench.pulumi_venv DIR [--pulumi VERSION]`; prints the venv's python,
for `bench/program_eval.py --python`.

The project pins pulumi 3.223.0 because azureml-core 1.61 pins `packaging<26` and later pulumi
releases need `packaging>=26` (requirements.txt). The program itself never imports the Azure ML
SDKs (the mocks harness checks that), so it runs unchanged in a venv that has the other SDK and
the program's own requirements, without azureml-core, azure-ai-ml or the development tools.
pulumi-azure-native and pulumi-docker-build keep the project's pins, so only the core SDK
differs from the project's venv.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

# Requirements the program does not load: the Azure ML SDKs (the ones holding pulumi back), the
# core SDK (given on the command line) and the development tools.
LEFT_OUT = re.compile(
    r"^(pulumi|azureml-.*|azure-ai-ml|pytest.*|ruff|mypy|pre-commit|check-jsonschema)$"
)


def program_requirements(requirements: Path) -> list[str]:
    """The pinned requirements of requirements.txt that the program needs, plus the two Pulumi
    provider SDKs at their pins (pulumi itself left out)."""
    kept = []
    for raw in requirements.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue  # comments, -c constraints.txt (it pins packaging<26), -e .
        name = re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0].lower()
        if not LEFT_OUT.match(name):
            kept.append(line)
    return sorted(set(kept))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="where to create the venv")
    parser.add_argument("--pulumi", default="3.272.0", help="pulumi SDK version to install")
    args = parser.parse_args()
    venv = args.dir.resolve()
    python = venv / "bin" / "python"
    wanted = [f"pulumi=={args.pulumi}", *program_requirements(REPO_ROOT / "requirements.txt")]
    for step in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", *wanted],
    ):
        # pip and venv print their own reasons; a failed step ends here, without a traceback.
        if subprocess.run(step, check=False).returncode != 0:
            raise SystemExit(f"failed: {' '.join(step)}")
    print(python)


if __name__ == "__main__":
    main()
