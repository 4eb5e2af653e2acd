"""Stack settings: project defaults are valid; bad values are named by key with allowed values."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from pydantic import ValidationError

from infra import components
from infra.settings import (
    KEYS,
    MODEL_KEYS,
    NAMESPACE,
    Backend,
    BackendSettings,
    ClusterSettings,
    DataFactorySettings,
    ImageSettings,
    Priority,
    RegistrySku,
    Settings,
    SettingsError,
    image_problems,
    parse_settings,
    provider_settings,
)
from tests.program.pulumi_config import (
    PROJECT_FILE,
    REPO_ROOT,
    declared_keys,
    project_name,
    raw_value,
    stack_config,
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
    assert set(declared_keys()) == set(KEYS), f"{PROJECT_FILE} and the Settings model differ"


def test_every_declared_key_has_a_description_and_a_default() -> None:
    for key, decl in declared_keys().items():
        assert decl.get("description"), f"{key} has no description"
        assert "default" in decl, f"{key} has no default"


def test_defaults_live_only_in_pulumi_yaml_the_model_has_none() -> None:
    fields = {(f.alias or n): f for n, f in Settings.model_fields.items()}
    with_default = sorted(key for key in MODEL_KEYS if not fields[key].is_required())
    assert with_default == [], f"defaults repeated in infra/settings.py: {with_default}"


_DECLARED_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "object": (dict,),
    "array": (tuple, list),
}


@pytest.mark.parametrize("key", MODEL_KEYS)
def test_declared_type_and_default_agree_with_the_model(key: str) -> None:
    decl = declared_keys()[key]
    settings = parse_settings(defaults(), project="azureml-pipelines", stack="staging")
    attribute = next(n for n, f in Settings.model_fields.items() if (f.alias or n) == key)
    parsed = getattr(settings, attribute)
    dumped = settings.model_dump(mode="json", by_alias=True)[key]
    if "type" in decl:
        assert isinstance(decl["default"], _DECLARED_TYPES[decl["type"]])
        assert isinstance(dumped, _DECLARED_TYPES[decl["type"]]), (key, decl["type"], parsed)
    # The model reads the default back as written: nothing reinterpreted on the way.
    assert json.loads(json.dumps(dumped)) == json.loads(json.dumps(decl["default"]))


@pytest.mark.parametrize(("key", "model"), [("clusters", ClusterSettings), ("images", None)])
def test_item_defaults_in_the_model_are_the_ones_pulumi_yaml_spells_out(
    key: str, model: type | None
) -> None:
    # Pulumi has no per-item defaults, so item fields keep theirs in the model; the project
    # default items spell every one out, and they must be the model's.
    items = declared_keys()[key]["default"]
    items = items if isinstance(items, list) else list(items.values())
    item_model = model or ImageSettings
    for item in items:
        for name, field in item_model.model_fields.items():
            if not field.is_required():
                alias = field.alias or name
                assert alias in item, f"{key} default item does not spell out {alias}"
                default = field.get_default(call_default_factory=True)
                assert item[alias] == (dict(default) if isinstance(default, Mapping) else default)


def test_data_factory_field_defaults_in_the_model_are_the_ones_pulumi_yaml_states() -> None:
    # The key's default is {} (off) and a stack file replaces it whole, so its fields keep their
    # defaults in the model; the description in Pulumi.yaml names every field and states them.
    description = " ".join(declared_keys()["dataFactory"]["description"].split())
    for name, field in DataFactorySettings.model_fields.items():
        alias = field.alias or name
        assert alias in description, f"dataFactory description does not name {alias}"
        default = field.get_default()
        if default is not None:
            assert f"{alias} (default: {default};" in description, (alias, default)
    off = parse_settings(defaults(), project="azureml-pipelines", stack="staging").data_factory
    assert off == DataFactorySettings() and not off.enabled


def test_component_args_repeat_no_settings_default() -> None:
    # A value the program takes from the settings has its default in Pulumi.yaml only: an Args
    # field of the same name with its own default would silently stand in when it is not passed.
    repeated = []
    for module in pkgutil.iter_modules(components.__path__):
        loaded = importlib.import_module(f"{components.__name__}.{module.name}")
        for obj in vars(loaded).values():
            if dataclasses.is_dataclass(obj) and obj.__module__ == loaded.__name__:
                repeated += [
                    f"{obj.__name__}.{f.name}"
                    for f in dataclasses.fields(obj)
                    if f.name in Settings.model_fields
                    and (
                        f.default is not dataclasses.MISSING
                        or f.default_factory is not dataclasses.MISSING
                    )
                ]
    assert repeated == []


def test_provider_reads_the_same_model_with_pulumi_yaml_defaults_for_missing_keys() -> None:
    settings = provider_settings({f"{NAMESPACE}:backend": "local"}, REPO_ROOT)
    assert settings.backend is Backend.LOCAL
    assert settings.local_store_path == declared_keys()["localStorePath"]["default"]
    full = parse_settings(defaults(), project="azureml-pipelines", stack="staging")
    assert isinstance(full, BackendSettings)
    assert provider_settings({}, REPO_ROOT) == BackendSettings(
        backend=full.backend, local_store_path=full.local_store_path
    )


def test_provider_settings_name_the_bad_key() -> None:
    with pytest.raises(SettingsError) as caught:
        provider_settings(
            {f"{NAMESPACE}:backend": "s3", "other:backend": "ignored", f"{NAMESPACE}:tags": "x"},
            REPO_ROOT,
        )
    assert caught.value.problems == (
        "azureml-pipelines:backend: 's3' is not allowed; allowed values: azureml, local",
    )


def test_project_defaults_alone_give_valid_settings() -> None:
    settings = parse_settings(defaults(), project="azureml-pipelines", stack="staging")
    assert settings.registry_sku is RegistrySku.BASIC
    assert settings.backend is Backend.AZUREML
    assert settings.version_retention == 2
    assert settings.schedules_enabled is True
    assert settings.existing_group is None
    assert [c.min_nodes for c in settings.clusters] == [0] * len(settings.clusters)
    assert set(settings.images) == {"training"}
    assert settings.images["training"].context == "docker"
    assert settings.pipeline_defs == "pipeline_defs"
    assert settings.local_store_path == ".amlpipe/local-backend.sqlite"


def test_standard_tags_are_added_and_configured_ones_cannot_override_them() -> None:
    (problem,) = problems_of(with_value("tags", {"owner": "ml-team", "Stack": "spoofed"}))
    assert problem == (
        "azureml-pipelines:tags.Stack: 'Stack' is set by the program itself; choose another name"
    )
    raw = with_value("tags", {"owner": "ml-team"})
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
        ("nameGeneration", "-1", "allowed values: integers >= 0"),
        ("protectData", "no", "allowed values: true, false"),
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
        "azureml-pipelines:clusters[0].priority: 'Spot' is not allowed; "
        "allowed values: Dedicated, LowPriority"
    ) in problems
    assert (
        "azureml-pipelines:clusters[1].minNodes: 3 is above maxNodes 1; allowed values: 0..1"
        in (problems)
    )
    assert "azureml-pipelines:clusters[2].name: missing (required field)" in problems
    assert any(
        p.startswith("azureml-pipelines:clusters[2].maxnodes: unknown field; allowed fields: ")
        for p in problems
    )
    assert problems[-1].startswith("azureml-pipelines:clusters: a structured value must be")
    assert len(problems) == 5


def test_a_path_set_on_a_stack_file_without_the_key_is_explained(tmp_path: Path) -> None:
    # What `pulumi config set --path 'azureml-pipelines:clusters[0].maxNodes' 8` writes on a stack
    # file without `clusters`: the CLI edits the stack file alone, not the project default.
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text("config:\n  azureml-pipelines:clusters:\n    - maxNodes: 8\n")
    raw = {
        key.split(":", 1)[1]: value
        for key, value in stack_config(stack_file).items()
        if key.startswith(f"{NAMESPACE}:")
    }
    problems = problems_of(raw)
    assert "azureml-pipelines:clusters[0].name: missing (required field)" in problems
    (hint,) = [p for p in problems if "--path" in p]
    assert hint.startswith("azureml-pipelines:clusters: ")
    assert "replaces the whole default from Pulumi.yaml" in hint
    assert "Edit Pulumi.test.yaml" in hint


def test_complete_values_get_no_path_hint() -> None:
    problems = problems_of(with_value("versionRetention", 0))
    assert not any("--path" in p for p in problems)


def test_cluster_defaults_scale_to_zero() -> None:
    clusters = [{"name": "cpu", "vmSize": "Standard_DS3_v2", "maxNodes": 2}]
    (cluster,) = parse_settings(with_value("clusters", clusters), "p", "s").clusters
    assert (cluster.min_nodes, cluster.priority) == (0, Priority.DEDICATED)


@pytest.mark.parametrize(
    "name",
    ["x", "cpu_cluster", "1cpu", "a-very-long-cluster", "cpu-1", "cpu-", "cpu-cluster-", "-cpu"],
)
def test_cluster_names_azure_rejects_are_reported(name: str) -> None:
    clusters = [{"name": name, "vmSize": "Standard_DS3_v2", "maxNodes": 2}]
    (problem,) = problems_of(with_value("clusters", clusters))
    assert problem.startswith(f"azureml-pipelines:clusters[0].name: {name!r} is not allowed; ")
    assert "2-16 letters, digits or '-', starting with a letter, ending with a letter" in problem


@pytest.mark.parametrize("name", ["ab", "cpu", "cpu-cluster", "gpu-a100", "A" * 16, "cpu-1a"])
def test_cluster_names_azure_accepts_pass(name: str) -> None:
    clusters = [{"name": name, "vmSize": "Standard_DS3_v2", "maxNodes": 2}]
    assert parse_settings(with_value("clusters", clusters), "p", "s").cluster_names == (name,)


def test_numbers_are_not_read_from_strings_or_fractions() -> None:
    clusters = [
        {"name": "cpu", "vmSize": "Standard_DS3_v2", "maxNodes": "4"},
        {"name": "gpu", "vmSize": "Standard_NC6", "maxNodes": 1.5},
    ]
    assert problems_of(with_value("clusters", clusters)) == (
        "azureml-pipelines:clusters[0].maxNodes: '4' is not an integer; "
        "allowed values: integers >= 1",
        "azureml-pipelines:clusters[1].maxNodes: 1.5 is not an integer; "
        "allowed values: integers >= 1",
    )


def test_a_workspace_closed_to_the_public_network_is_refused() -> None:
    (problem,) = problems_of(with_value("publicNetworkAccess", "Disabled"))
    assert problem.startswith("azureml-pipelines:publicNetworkAccess: Disabled is not supported")
    assert "private endpoint" in problem


def test_tags_beyond_what_a_storage_account_takes_are_refused() -> None:
    twelve = {f"team-{i}": "x" for i in range(12)}
    assert parse_settings(with_value("tags", twelve), "p", "s").resource_tags()["team-0"] == "x"
    (problem,) = problems_of(with_value("tags", {**twelve, "one-more": "x"}))
    assert problem == (
        "azureml-pipelines:tags: 13 tags plus the 3 the program sets make 16; "
        "storage accounts take at most 15"
    )


@pytest.mark.parametrize(
    ("tags", "located"),
    [
        ({"a/b": "x"}, "azureml-pipelines:tags.a/b: 'a/b' is not allowed"),
        ({"n" * 129: "x"}, f"azureml-pipelines:tags.{'n' * 129}: "),
        ({"owner": "v" * 257}, "azureml-pipelines:tags.owner: string should have at most 256"),
        ({"owner": 3}, "azureml-pipelines:tags.owner: input should be a valid string"),
    ],
)
def test_tag_names_and_values_azure_rejects_are_located(
    tags: dict[str, object], located: str
) -> None:
    (problem,) = problems_of(with_value("tags", tags))
    assert problem.startswith(located)


@pytest.mark.parametrize(
    ("stack", "other"),
    [("Dev", "dev"), ("feature_x", "feature-x"), ("feature.x", "feature-x"), ("PROD", "prod")],
)
def test_a_stack_whose_resource_names_collide_with_another_stack_is_refused(
    stack: str, other: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(defaults(), "azureml-pipelines", stack, other_stacks=[other, "unrelated"])
    assert caught.value.problems == (
        f"stack {stack!r}: maps to the same resource names as stack {other!r} "
        f"(Pulumi.{other}.yaml); rename one of them",
    )


def test_a_stack_does_not_collide_with_its_own_file() -> None:
    assert parse_settings(defaults(), "azureml-pipelines", "dev", ["dev", "prod"]).stack == "dev"


def test_duplicate_and_empty_cluster_lists_are_reported() -> None:
    twice = [{"name": "cpu", "vmSize": "Standard_DS3_v2", "maxNodes": 2}] * 2
    assert problems_of(with_value("clusters", twice)) == (
        "azureml-pipelines:clusters: cluster name 'cpu' used twice; names must be unique "
        "(case-insensitive)",
    )
    (empty,) = problems_of(with_value("clusters", []))
    assert empty.startswith("azureml-pipelines:clusters: empty")


def test_structured_values_must_be_json_of_the_right_shape() -> None:
    raw = defaults()
    raw["tags"] = "{not json"
    raw["images"] = json.dumps(["docker"])
    problems = problems_of(raw)
    assert any(p.startswith("azureml-pipelines:tags: not valid JSON") for p in problems)
    assert "azureml-pipelines:images: input should be an object (found ['docker'])" in problems
    assert len(problems) == 2


def test_image_entries_need_a_context() -> None:
    problem, hint = problems_of(with_value("images", {"training": {"dockerfile": "Dockerfile"}}))
    assert problem == "azureml-pipelines:images.training.context: missing (required field)"
    assert hint.startswith("azureml-pipelines:images: a structured value must be complete")


def _symlink_loop(root: Path) -> tuple[str, str]:
    (root / "loop").symlink_to("loop")
    return "loop", "cannot be checked: Symlink loop from"


def _a_file(root: Path) -> tuple[str, str]:
    (root / "file").write_text("")
    return "file", f"build context {root / 'file'} is not a folder"


@pytest.mark.parametrize(
    "make",
    [
        _symlink_loop,
        lambda root: ("a\x00b", "cannot be checked: embedded null byte"),
        lambda root: ("x" * 5000, "cannot be checked: File name too long"),
        _a_file,
    ],
    ids=["symlink loop", "NUL byte", "name too long", "a file"],
)
def test_an_unusable_image_context_is_a_located_problem_not_a_traceback(
    tmp_path: Path, make: Callable[[Path], tuple[str, str]]
) -> None:
    context, message = make(tmp_path)

    (problem,) = image_problems({"training": ImageSettings(context=context)}, tmp_path)

    assert problem.key == "azureml-pipelines:images.training.context"
    assert problem.message.startswith(message)
    assert len(problem.message) < 300


def test_an_unusable_dockerfile_is_located_at_its_own_key(tmp_path: Path) -> None:
    (tmp_path / "docker").mkdir()
    images = {"training": ImageSettings(context="docker", dockerfile="y" * 5000)}

    (problem,) = image_problems(images, tmp_path)

    assert problem.key == "azureml-pipelines:images.training.dockerfile"
    assert problem.message == "cannot be checked: File name too long"


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
    with pytest.raises(ValidationError, match="frozen"):
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


def test_a_misspelt_key_is_reported_with_the_key_it_resembles() -> None:
    raw = defaults()
    raw["versionRetension"] = "3"
    raw["colour"] = "blue"
    assert problems_of(raw) == (
        "azureml-pipelines:colour: unknown key; known keys: " + ", ".join(sorted(KEYS)),
        "azureml-pipelines:versionRetension: unknown key; did you mean versionRetention?",
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            {"name": "amlpipe-x-adf", "pipelines": ["a", "b", "a", "a"]},
            [
                "azureml-pipelines:dataFactory.pipelines[2]: 'a' is listed twice",
                "azureml-pipelines:dataFactory.pipelines[3]: 'a' is listed twice",
            ],
        ),
        (
            {"existing": "adf--shared", "role": "Owner"},
            [
                "azureml-pipelines:dataFactory.existing: 'adf--shared' has consecutive '-' "
                "(Data Factory names may not)",
                "azureml-pipelines:dataFactory.role: 'Owner' is not allowed; allowed values: "
                "AzureML Data Scientist, Contributor",
            ],
        ),
        (
            {"name": "amlpipe-x-adf", "resourceGroupName": "rg-data"},
            [
                "azureml-pipelines:dataFactory.resourceGroupName: only applies to an existing "
                "factory (existing:)"
            ],
        ),
        (
            ["adf-shared"],
            [
                "azureml-pipelines:dataFactory: expected an object such as {name: adf-...}, "
                "found ['adf-shared']"
            ],
        ),
    ],
    ids=["listed-twice", "all-at-once", "group-without-existing", "list"],
)
def test_data_factory_problems_are_located_under_its_key(
    value: object, expected: list[str]
) -> None:
    assert list(problems_of(with_value("dataFactory", value))) == expected


def test_data_factory_problems_come_with_the_other_keys_problems() -> None:
    raw = with_value("dataFactory", {"name": "a_b"})
    raw["versionRetention"] = "0"
    problems = problems_of(raw)
    assert any(p.startswith("azureml-pipelines:versionRetention: ") for p in problems)
    assert any(p.startswith("azureml-pipelines:dataFactory.name: 'a_b' is not") for p in problems)


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_data_factory_is_off(blank: str) -> None:
    settings = parse_settings(with_value("dataFactory", blank), "azureml-pipelines", "staging")
    assert not settings.data_factory.enabled


def test_a_data_factory_reads_back_as_written() -> None:
    raw = with_value("dataFactory", {"name": "amlpipe-x-adf"})
    settings = parse_settings(raw, "azureml-pipelines", "staging")
    assert settings.data_factory.factory_name == "amlpipe-x-adf"
    assert settings.model_dump(mode="json", by_alias=True)["dataFactory"] == {
        "name": "amlpipe-x-adf"
    }
