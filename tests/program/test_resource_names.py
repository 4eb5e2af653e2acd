"""Derived Azure resource names: valid for each resource's rules, stable, unique where global."""

from __future__ import annotations

import pytest

from infra.naming import RULES, check_name, resource_names, stable_suffix

SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
LONG_PREFIX = "a" + "bcdefghij" * 7  # 64 characters, longer than any name limit but one
PREFIXES = ["amlpipe", "a", "ml-team", "x9", LONG_PREFIX, "team--with--hyphens"]
STACKS = ["dev", "prod", "staging", "Feature_Branch.42", "a-very-long-stack-name-for-a-pr-preview"]
GLOBAL = ["storage_account", "container_registry", "key_vault"]


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("stack", STACKS)
def test_every_name_satisfies_its_resource_rules(prefix: str, stack: str) -> None:
    names = resource_names(prefix, "azureml-pipelines", stack, SUBSCRIPTION)
    for kind, rule in RULES.items():
        name = names.identity("cpu-cluster") if kind == "identity" else getattr(names, kind)
        assert rule.fullmatch(name), f"{kind} name {name!r} breaks its rule"


def test_names_follow_prefix_and_stack() -> None:
    names = resource_names("amlpipe", "azureml-pipelines", "dev", SUBSCRIPTION)
    suffix = stable_suffix(SUBSCRIPTION, "azureml-pipelines", "dev", "amlpipe")
    assert names.resource_group == "rg-amlpipe-dev"
    assert names.ml_workspace == "amlpipe-dev-ws"
    assert names.storage_account == f"amlpipedev{suffix}"
    assert names.container_registry == f"amlpipedev{suffix}"
    assert names.key_vault == f"amlpipe-dev-{suffix}"
    assert names.identity("cpu-cluster") == "amlpipe-dev-ws-cpu-cluster-id"


def test_long_prefix_is_trimmed_to_each_limit() -> None:
    names = resource_names(LONG_PREFIX, "azureml-pipelines", "prod", SUBSCRIPTION)
    assert len(names.storage_account) == 24
    assert len(names.key_vault) == 24
    assert len(names.ml_workspace) <= 33
    assert len(names.container_registry) <= 50


def test_global_names_are_stable_across_runs() -> None:
    first = resource_names("amlpipe", "azureml-pipelines", "dev", SUBSCRIPTION)
    again = resource_names("amlpipe", "azureml-pipelines", "dev", SUBSCRIPTION)
    assert first == again


@pytest.mark.parametrize(
    "other",
    [
        ("amlpipe", "azureml-pipelines", "dev", "99999999-1111-2222-3333-444444444444"),
        ("amlpipe", "azureml-pipelines", "prod", SUBSCRIPTION),
        ("amlpipe", "other-project", "dev", SUBSCRIPTION),
    ],
)
def test_global_names_differ_per_subscription_stack_and_project(
    other: tuple[str, str, str, str],
) -> None:
    base = resource_names("amlpipe", "azureml-pipelines", "dev", SUBSCRIPTION)
    changed = resource_names(*other)
    for kind in GLOBAL:
        assert getattr(base, kind) != getattr(changed, kind)


def test_long_prefixes_that_trim_alike_still_get_distinct_global_names() -> None:
    one = resource_names(LONG_PREFIX + "x", "azureml-pipelines", "dev", SUBSCRIPTION)
    two = resource_names(LONG_PREFIX + "y", "azureml-pipelines", "dev", SUBSCRIPTION)
    for kind in GLOBAL:
        assert getattr(one, kind) != getattr(two, kind)


@pytest.mark.parametrize(
    ("kind", "name"),
    [
        ("storage_account", "has-hyphen1"),
        ("storage_account", "UPPERCASE1"),
        ("storage_account", "a" * 25),
        ("storage_account", "ab"),
        ("container_registry", "abcd"),
        ("container_registry", "with-hyphen"),
        ("key_vault", "1starts-with-digit"),
        ("key_vault", "double--hyphen"),
        ("key_vault", "ends-with-hyphen-"),
        ("key_vault", "a" * 25),
        ("ml_workspace", "a" * 34),
        ("ml_workspace", "-leading"),
        ("log_analytics", "abc"),
        ("resource_group", "ends.with.dot."),
    ],
)
def test_rules_reject_names_azure_rejects(kind: str, name: str) -> None:
    with pytest.raises(ValueError, match=kind.replace("_", " ")):
        check_name(kind, name)


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("generation", [1, 9, 10, 99])
def test_a_new_name_generation_renames_only_what_azure_keeps_after_deletion(
    prefix: str, generation: int
) -> None:
    for stack in STACKS:
        original = resource_names(prefix, "azureml-pipelines", stack, SUBSCRIPTION)
        renamed = resource_names(prefix, "azureml-pipelines", stack, SUBSCRIPTION, generation)
        changed = {
            k for k in RULES if k != "identity" and getattr(original, k) != getattr(renamed, k)
        }
        assert changed == {"key_vault", "ml_workspace"}
        for kind, rule in RULES.items():
            name = renamed.identity("cpu-cluster") if kind == "identity" else getattr(renamed, kind)
            assert rule.fullmatch(name), f"{kind} name {name!r} breaks its rule"


def test_generation_zero_keeps_the_original_names() -> None:
    assert resource_names("amlpipe", "p", "dev", SUBSCRIPTION, 0) == resource_names(
        "amlpipe", "p", "dev", SUBSCRIPTION
    )
    assert resource_names("amlpipe", "p", "dev", SUBSCRIPTION, 2).ml_workspace == "amlpipe-dev-ws2"
