"""bench/pulumi_venv.py: the venv that measures the program on another Pulumi SDK takes the
project's pins for everything the program loads, and none of the Azure ML SDKs (whose pins are
what hold pulumi back, and which the program never imports)."""

from __future__ import annotations

from pathlib import Path

from bench.pulumi_venv import program_requirements

REPO_ROOT = Path(__file__).resolve().parents[2]


def _pins(lines: list[str]) -> dict[str, str]:
    return dict(line.split("==", 1) for line in lines)


def test_the_other_sdk_venv_keeps_the_programs_pins_and_leaves_out_the_azure_ml_sdks() -> None:
    kept = _pins(program_requirements(REPO_ROOT / "requirements.txt"))
    project = _pins(
        [
            line.split("#", 1)[0].strip()
            for line in (REPO_ROOT / "requirements.txt").read_text().splitlines()
            if "==" in line.split("#", 1)[0]
        ]
    )

    assert not {name for name in kept if name.startswith(("azureml-", "azure-ai-ml"))}
    assert "pulumi" not in kept  # given on the command line
    # The provider SDKs and what the program imports keep the project's versions.
    for name in ("pulumi-azure-native", "pulumi-docker-build", "pydantic", "croniter", "PyYAML"):
        assert kept[name] == project[name]
    assert not {"pytest", "ruff", "mypy", "pre-commit"} & set(kept)


def test_the_other_sdk_venv_reads_only_pinned_requirements(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements.txt"
    requirements.write_text(
        "-c constraints.txt\n"
        "# a comment\n"
        "pulumi==3.223.0\n"
        "azureml-core==1.61.0.post4  # held back\n"
        "azure-ai-ml==1.35.2\n"
        "pulumi-azure-native==3.24.0\n"
        "pytest-timeout==2.4.0\n"
        "rich==15.0.0\n"
        "-e .\n"
    )

    assert program_requirements(requirements) == ["pulumi-azure-native==3.24.0", "rich==15.0.0"]
