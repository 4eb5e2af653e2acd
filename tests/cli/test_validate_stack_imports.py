"""`amlpipe validate --stack` runs the program's pre-flight checks without the program's imports:
no Pulumi, Azure or Docker code, and the v2 planning module only for a stack that publishes
with v2 (what the program loads lazily too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.definitions.test_cli_imports import NEVER, modules_loaded_by, top_level

V2_PLAN = "infra.provider.azureml_v2.plan"


@pytest.mark.parametrize(("stack", "plans_v2"), [("dev", False), ("prod", False), ("v2", True)])
def test_validate_with_a_stack_loads_no_deployment_code_and_v2_planning_only_for_v2(
    tmp_path: Path, stack: str, plans_v2: bool
) -> None:
    loaded = modules_loaded_by(tmp_path, "validate", "--stack", stack)

    assert "infra.preflight" in loaded  # the checks ran
    assert top_level(loaded).isdisjoint(NEVER), sorted(top_level(loaded) & set(NEVER))
    assert (V2_PLAN in loaded) is plans_v2
    assert {"infra.program", "infra.components"}.isdisjoint(loaded)
