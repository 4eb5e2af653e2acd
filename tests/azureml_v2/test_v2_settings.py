"""The per-stack API choice: `api` (v1 by default) and `apiPrevious` (retired by a cut-over)."""

from __future__ import annotations

import pytest

from infra.settings import Api, PreviousApi, SettingsError, parse_settings
from tests.program.pulumi_config import declared_keys, raw_value


def _raw(**changes: str) -> dict[str, str]:
    raw = {k: raw_value(d["default"]) for k, d in declared_keys().items() if "default" in d}
    return {**raw, **changes}


def _problems(**changes: str) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(_raw(**changes), project="azureml-pipelines", stack="test")
    return caught.value.problems


def test_existing_stacks_stay_on_v1_without_a_cut_over() -> None:
    settings = parse_settings(_raw(), project="azureml-pipelines", stack="test")
    assert (settings.api, settings.api_previous) == (Api.V1, PreviousApi.NONE)
    assert settings.apis == (Api.V1,)


def test_a_cut_over_lists_the_active_api_first() -> None:
    settings = parse_settings(
        _raw(api="v2", apiPrevious="v1"), project="azureml-pipelines", stack="test"
    )
    assert settings.apis == (Api.V2, Api.V1)


def test_api_values_are_checked_with_the_key_named() -> None:
    (problem,) = _problems(api="v3")
    assert problem.startswith("azureml-pipelines:api: 'v3' is not allowed")
    assert "v1, v2" in problem


def test_the_previous_api_must_be_the_other_one() -> None:
    (problem,) = _problems(api="v2", apiPrevious="v2")
    assert problem.startswith("azureml-pipelines:apiPrevious: v2 is also `api`")


def test_v2_is_refused_on_the_local_backend() -> None:
    (problem,) = _problems(api="v2", backend="local")
    assert problem.startswith("azureml-pipelines:api: v2 needs backend azureml")
