"""Stack settings: project defaults are valid; bad values are named by key with allowed values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pulumi_config import PROJECT_FILE, declared_keys, project_name, raw_value, stack_config

from infra.settings import (
    KEYS,
    NAMESPACE,
    Backend,
    Priority,
    RegistrySku,
    SettingsError,
    parse_settings,
)


def defaults() -> dict[str, str]:
    """Raw config of a stack file that changes nothing."""
    return {k: raw_value(d["default"]) for k, d in declared_keys().items() if "default" in d}


def problems_of(raw: dict[str, str]) -> tuple[str, ...]:
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw, project="azureml-pipelines", stack="test")
    return caught.value.problems


def with_value(key: str, value: object) -> dict[str, str]:
    raw = defaults()
    raw[key] = raw_value(value)
    return raw


def test_pulumi_yaml_declares_exactly_the_keys_settings_reads() -> None:
    assert project_name() == NAMESPACE
    assert list(declared_keys()) == list(KEYS), f"{PROJECT_FILE} and infra/settings.KEYS differ"


def test_every_declared_key_has_a_description_and_a_default() -> None:
    for key, decl in declared_keys().items():
        assert decl.get("description"), f"{key} has no description"
        assert "default" in decl, f"{key} has no default"


def test_project_defaults_alone_give_valid_settings() -> None:
    settings = parse_settings(defaults(), project="azureml-pipelines", stack="staging")
    assert settings.registry_sku is RegistrySku.BASIC
    assert settings.backend is Backend.AZUREML
    assert settings.version_retention == 2
    assert settings.schedules_enabled is True
    assert settings.resource_group_name is None
    assert [c.min_nodes for c in settings.clusters] == [0] * len(settings.clusters)
    assert set(settings.images) == {"training"}
    assert settings.images["training"].context == "docker"
    assert settings.pipeline_defs == "pipeline_defs"
    assert settings.local_store_path == ".amlpipe/local-backend.sqlite"


def test_standard_tags_are_added_and_win_over_configured_ones() -> None:
    raw = with_value("tags", {"owner": "ml-team", "stack": "spoofed"})
    tags = parse_settings(raw, project="azureml-pipelines", stack="dev").resource_tags()
    assert tags == {
        "owner": "ml-team",
        "project": "azureml-pipelines",
        "stack": "dev",
        "managed-by": "pulumi",
    }


def test_missing_key_is_named_with_how_to_set_it() -> None:
    raw = defaults()
    del raw["location"]
    (problem,) = problems_of(raw)
    assert problem.startswith("azureml-pipelines:location: missing")
    assert "pulumi config set azureml-pipelines:location" in problem


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("registrySku", "Cheap", "allowed values: Basic, Standard, Premium"),
        ("publicNetworkAccess", "Sometimes", "allowed values: Enabled, Disabled"),
        ("backend", "s3", "allowed values: azureml, local"),
        ("schedulesEnabled", "yes", "allowed values: true, false"),
        ("keyVaultPurgeProtection", "on", "allowed values: true, false"),
        ("versionRetention", "0", "allowed values: integers >= 1"),
        ("versionRetention", "two", "allowed values: integers >= 1"),
        ("namePrefix", "My_Prefix", "allowed values: 1-32 lowercase letters"),
    ],
)
def test_bad_value_names_the_key_the_value_and_the_allowed_values(
    key: str, value: str, allowed: str
) -> None:
    (problem,) = problems_of(with_value(key, value))
    assert problem.startswith(f"azureml-pipelines:{key}: ")
    assert repr(value) in problem or value in problem
    assert allowed in problem


def test_bad_cluster_fields_are_named_by_index_and_field() -> None:
    clusters = [
        {"name": "cpu", "vmSize": "Standard_DS3_v2", "priority": "Spot", "maxNodes": 2},
        {"name": "gpu", "vmSize": "Standard_NC6", "minNodes": 3, "maxNodes": 1},
        {"vmSize": "Standard_NC6", "maxNodes": 1, "maxnodes": 2},
    ]
    problems = problems_of(with_value("clusters", clusters))
    assert (
        "azureml-pipelines:clusters[0]: priority: 'Spot' is not allowed; "
        "allowed values: Dedicated, LowPriority"
    ) in problems
    assert any(
        p.startswith("azureml-pipelines:clusters[1]: minNodes: 3 is above") for p in problems
    )
    assert any(p.startswith("azureml-pipelines:clusters[2]: name: missing") for p in problems)
    assert any(
        p.startswith("azureml-pipelines:clusters[2]: maxnodes: unknown field") for p in problems
    )


def test_cluster_defaults_scale_to_zero() -> None:
    clusters = [{"name": "cpu", "vmSize": "Standard_DS3_v2", "maxNodes": 2}]
    (cluster,) = parse_settings(with_value("clusters", clusters), "p", "s").clusters
    assert (cluster.min_nodes, cluster.priority) == (0, Priority.DEDICATED)


@pytest.mark.parametrize("name", ["x", "cpu_cluster", "1cpu", "a-very-long-cluster-name", "cpu-1"])
def test_cluster_names_azure_rejects_are_reported(name: str) -> None:
    clusters = [{"name": name, "vmSize": "Standard_DS3_v2", "maxNodes": 2}]
    problems = problems_of(with_value("clusters", clusters))
    assert any(p.startswith("azureml-pipelines:clusters[0]: name: ") for p in problems)


def test_duplicate_and_empty_cluster_lists_are_reported() -> None:
    twice = [{"name": "cpu", "vmSize": "Standard_DS3_v2", "maxNodes": 2}] * 2
    assert problems_of(with_value("clusters", twice)) == (
        "azureml-pipelines:clusters: cluster name 'cpu' is used twice; names must be unique",
    )
    (empty,) = problems_of(with_value("clusters", []))
    assert empty.startswith("azureml-pipelines:clusters: empty")


def test_structured_values_must_be_json_of_the_right_shape() -> None:
    raw = defaults()
    raw["tags"] = "{not json"
    raw["images"] = json.dumps(["docker"])
    problems = problems_of(raw)
    assert any(p.startswith("azureml-pipelines:tags: not valid JSON") for p in problems)
    assert "azureml-pipelines:images: expected an object such as" in " ".join(problems)


def test_image_entries_need_a_context() -> None:
    (problem,) = problems_of(with_value("images", {"training": {"dockerfile": "Dockerfile"}}))
    assert problem.startswith("azureml-pipelines:images.training: context: missing")


def test_all_problems_are_reported_at_once() -> None:
    raw = with_value("registrySku", "Cheap")
    raw["versionRetention"] = "0"
    raw["backend"] = "s3"
    with pytest.raises(SettingsError) as caught:
        parse_settings(raw, "azureml-pipelines", "dev")
    assert len(caught.value.problems) == 3
    assert "3 problem(s)" in str(caught.value)


def test_settings_are_frozen() -> None:
    settings = parse_settings(defaults(), "azureml-pipelines", "dev")
    with pytest.raises(AttributeError):
        settings.location = "eastus"  # type: ignore[misc]
    with pytest.raises(TypeError):
        settings.tags["x"] = "y"  # type: ignore[index]


def test_stack_config_applies_defaults_overrides_and_fakes_secure_values(tmp_path: Path) -> None:
    stack_file = tmp_path / "Pulumi.qa.yaml"
    stack_file.write_text(
        "config:\n"
        "  azureml-pipelines:registrySku: Premium\n"
        "  azureml-pipelines:tags: {owner: {secure: v1:AAAA}}\n"
        "  azure-native:clientSecret:\n"
        "    secure: v1:BBBB\n",
        encoding="utf-8",
    )
    config = stack_config(stack_file)
    assert config["azureml-pipelines:registrySku"] == "Premium"
    assert config["azureml-pipelines:location"] == "westeurope"  # project default
    assert config["azure-native:clientSecret"] == "fake-secret-for-azure-native:clientSecret"
    assert json.loads(config["azureml-pipelines:tags"]) == {
        "owner": "fake-secret-for-azureml-pipelines:tags.owner"
    }
    assert not any("v1:" in value for value in config.values())
