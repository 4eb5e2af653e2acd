"""The real Pulumi program under recording mocks, once per Pulumi.<stack>.yaml in the repository.

Each run happens in a fresh interpreter (tests/program/mock_program.py), with the stack's config
(Pulumi.yaml defaults overlaid by the stack file). The assertions are the deployment's invariants:
what must hold for every stack, plus what dev and prod promise. A new stack file is picked up by
the glob without changes here.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from infra.components.compute import (
    ACR_PULL_ROLE_ID,
    KEY_VAULT_SECRETS_USER_ROLE_ID,
    assignment_name,
)
from infra.components.image import stage_context
from infra.definitions.hashing import build_context_tag
from infra.naming import RULES
from infra.settings import KEYS, Api, Priority, Settings, parse_settings
from tests.program.mock_program import SUBSCRIPTION_ID, TENANT_ID, Registration
from tests.program.pulumi_config import (
    REPO_ROOT,
    settings_raw,
    stack_config,
    stack_files,
    stack_name,
)

HARNESS = Path(__file__).resolve().parent / "mock_program.py"
STACK_FILES = stack_files()

# Azure's built-in AcrPull role, as a role assignment in this subscription refers to it.
ACR_PULL = (
    f"/subscriptions/{SUBSCRIPTION_ID}/providers/Microsoft.Authorization/roleDefinitions/"
    f"{ACR_PULL_ROLE_ID}"
)
# Azure names of each resource type: the input holding it and the rule it must satisfy.
NAME_INPUTS = {
    "azure-native:resources:ResourceGroup": ("resourceGroupName", "resource_group"),
    "azure-native:storage:StorageAccount": ("accountName", "storage_account"),
    "azure-native:containerregistry:Registry": ("registryName", "container_registry"),
    "azure-native:keyvault:Vault": ("vaultName", "key_vault"),
    "azure-native:operationalinsights:Workspace": ("workspaceName", "log_analytics"),
    "azure-native:applicationinsights:Component": ("resourceName", "app_insights"),
    "azure-native:machinelearningservices:Workspace": ("workspaceName", "ml_workspace"),
    "azure-native:managedidentity:UserAssignedIdentity": ("resourceName", "identity"),
}


@dataclass
class Run:
    """A finished program run, with lookups over its registrations."""

    stack: str
    settings: Settings
    cluster_config: list[dict[str, Any]]
    registrations: list[Registration]
    calls: list[str]
    exports: dict[str, Any]
    azureml_modules: list[str]
    azure_native_services: list[str] = field(default_factory=list)
    component_outputs: dict[str, list[str]] = field(default_factory=dict)

    def of_type(self, typ: str) -> list[Registration]:
        return [r for r in self.registrations if r.type == typ]

    def one(self, typ: str) -> Registration:
        (found,) = self.of_type(typ)
        return found

    def by_urn(self, urn: str) -> Registration:
        (found,) = [r for r in self.registrations if r.urn == urn]
        return found


def run_harness(stack_file: Path, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """The harness process for `stack_file`, finished."""
    return subprocess.run(
        [sys.executable, str(HARNESS), str(stack_file)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


@functools.cache
def run_stack(stack_file: Path) -> Run:
    """Run the program for `stack_file` in a fresh interpreter and load its record (once)."""
    done = run_harness(stack_file)
    assert done.returncode == 0, f"program failed for {stack_file.name}:\n{done.stderr}"
    record = json.loads(done.stdout)
    config = stack_config(stack_file)
    raw = settings_raw(config)
    return Run(
        stack=record["stack"],
        settings=parse_settings(raw, "azureml-pipelines", stack_name(stack_file)),
        cluster_config=json.loads(raw["clusters"]),
        registrations=[Registration(**r) for r in record["registrations"]],
        calls=record["calls"],
        exports=record["exports"],
        azureml_modules=record["azureml_modules"],
        azure_native_services=record["azure_native_services"],
        component_outputs=record["component_outputs"],
    )


@pytest.fixture(scope="module", params=STACK_FILES, ids=[stack_name(p) for p in STACK_FILES])
def run(request: pytest.FixtureRequest) -> Run:
    return run_stack(request.param)


def test_the_repository_has_dev_and_prod_stack_files() -> None:
    assert {"dev", "prod"} <= {stack_name(p) for p in STACK_FILES}


@pytest.mark.parametrize("stack_file", STACK_FILES, ids=[stack_name(p) for p in STACK_FILES])
def test_stack_files_set_only_declared_keys(stack_file: Path) -> None:
    unknown = sorted(set(settings_raw(stack_config(stack_file))) - set(KEYS))
    assert unknown == [], f"{stack_file.name} sets undeclared keys {unknown}"


def test_a_new_stack_file_with_only_location_and_cluster_size_deploys(tmp_path: Path) -> None:
    staging = tmp_path / "Pulumi.staging.yaml"
    staging.write_text(
        "config:\n"
        "  azureml-pipelines:location: northeurope\n"
        "  azureml-pipelines:clusters:\n"
        "    - {name: cpu-cluster, vmSize: Standard_D2s_v3, maxNodes: 1}\n",
        encoding="utf-8",
    )
    run = run_stack(staging)
    (compute,) = run.of_type(_COMPUTE)
    assert compute.inputs["properties"]["properties"]["vmSize"] == "Standard_D2s_v3"
    assert compute.inputs["properties"]["properties"]["scaleSettings"]["minNodeCount"] == 0
    locations = {r.inputs["location"] for r in run.registrations if "location" in r.inputs}
    assert locations == {"northeurope"}
    assert run.exports["workspaceName"] == "amlpipe-staging-ws"


def test_a_bad_stack_value_stops_the_program_with_the_key_named(tmp_path: Path) -> None:
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config:\n  azureml-pipelines:registrySku: Cheap\n", encoding="utf-8")
    done = run_harness(broken)
    assert done.returncode != 0
    assert (
        "azureml-pipelines:registrySku: 'Cheap' is not allowed; "
        "allowed values: Basic, Standard, Premium"
    ) in done.stderr
    # A user's mistake ends the program as a RunError: the message, not a Python traceback.
    assert "Traceback" not in done.stderr, done.stderr


def test_a_broken_definition_stops_the_program_with_its_location_and_no_traceback(
    tmp_path: Path,
) -> None:
    defs = tmp_path / "defs"
    (defs / "broken").mkdir(parents=True)
    (defs / "broken" / "pipeline.yaml").write_text("name: broken\nsteps: 3\n", encoding="utf-8")
    stack = tmp_path / "Pulumi.brokendefs.yaml"
    stack.write_text(f"config:\n  azureml-pipelines:pipelineDefs: {defs}\n", encoding="utf-8")
    done = run_harness(stack)
    assert done.returncode != 0
    assert "pipeline.yaml:2" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""


def test_a_misspelt_key_in_a_stack_file_stops_the_program(tmp_path: Path) -> None:
    typo = tmp_path / "Pulumi.typo.yaml"
    typo.write_text("config:\n  azureml-pipelines:schedulesEnabld: false\n", encoding="utf-8")
    done = run_harness(typo)
    assert done.returncode != 0
    assert (
        "azureml-pipelines:schedulesEnabld: unknown key; did you mean schedulesEnabled?"
    ) in done.stderr


def test_program_calls_only_the_client_config_invoke(run: Run) -> None:
    assert run.calls == ["azure-native:authorization:getClientConfig"]


def test_program_does_not_import_azureml(run: Run) -> None:
    assert run.azureml_modules == []


def test_registry_admin_user_is_off(run: Run) -> None:
    registry = run.one("azure-native:containerregistry:Registry")
    assert registry.inputs["adminUserEnabled"] is False
    assert registry.inputs["sku"] == {"name": run.settings.registry_sku.value}


def test_each_configured_cluster_exists_with_its_scaling(run: Run) -> None:
    computes = {c.inputs["computeName"]: c for c in run.of_type(_COMPUTE)}
    assert list(computes) == list(run.settings.cluster_names)
    for item in run.cluster_config:
        aml = computes[item["name"]].inputs["properties"]
        assert aml["computeType"] == "AmlCompute"
        scale = aml["properties"]["scaleSettings"]
        # Scale to zero unless the stack configures a minimum.
        assert scale["minNodeCount"] == item.get("minNodes", 0)
        assert scale["maxNodeCount"] == item["maxNodes"]
        assert aml["properties"]["vmPriority"] == item.get("priority", "Dedicated")
        assert aml["properties"]["vmSize"] == item["vmSize"]


_COMPUTE = "azure-native:machinelearningservices:Compute"
_IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
_ROLE = "azure-native:authorization:RoleAssignment"


def test_each_cluster_identity_holds_acr_pull_and_key_vault_secrets_user(run: Run) -> None:
    registry = run.one("azure-native:containerregistry:Registry")
    vault = run.one("azure-native:keyvault:Vault")
    identities = {i.id: i for i in run.of_type(_IDENTITY)}
    for compute in run.of_type(_COMPUTE):
        identity_spec = compute.inputs["identity"]
        assert identity_spec["type"] == "UserAssigned"
        (identity_id,) = identity_spec["userAssignedIdentities"]
        principal = identities[identity_id].outputs["principalId"]
        grants = [r for r in run.of_type(_ROLE) if r.inputs["principalId"] == principal]
        assert sorted((g.inputs["roleDefinitionId"], g.inputs["scope"]) for g in grants) == sorted(
            [(ACR_PULL, registry.id), (_role(KEY_VAULT_SECRETS_USER_ROLE_ID), vault.id)]
        ), f"cluster {compute.inputs['computeName']}: AcrPull on the registry, secrets on the vault"
        for grant in grants:
            assert grant.inputs["principalType"] == "ServicePrincipal"
            # Role assignment names are GUIDs derived from scope, principal id and role.
            name = grant.inputs["roleAssignmentName"]
            assert str(uuid.UUID(name)) == name
            role_id = grant.inputs["roleDefinitionId"].rsplit("/", 1)[1]
            assert name == assignment_name(grant.inputs["scope"], principal, role_id)


def _role(role_id: str) -> str:
    return ACR_PULL.replace(ACR_PULL_ROLE_ID, role_id)


def test_a_replaced_identity_gets_new_role_assignment_names(tmp_path: Path) -> None:
    # Another prefix renames (so replaces) the identity: Azure gives it a new principal id, and
    # its assignments must not reuse the old names (Azure would refuse: RoleAssignmentExists).
    renamed = tmp_path / "Pulumi.dev.yaml"
    renamed.write_text(
        (REPO_ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8")
        + "  azureml-pipelines:namePrefix: teamml\n",
        encoding="utf-8",
    )
    before = run_stack(REPO_ROOT / "Pulumi.dev.yaml")
    after = run_stack(renamed)

    def by_urn(run: Run) -> dict[str, tuple[str, str]]:
        return {
            r.urn: (r.inputs["principalId"], r.inputs["roleAssignmentName"])
            for r in run.of_type(_ROLE)
        }

    old, new = by_urn(before), by_urn(after)
    assert old.keys() == new.keys()  # the same logical resources, so Pulumi replaces them
    for urn in old:
        assert old[urn][0] != new[urn][0], "the mocks give a renamed identity a new principal"
        assert old[urn][1] != new[urn][1], f"{urn} keeps its assignment name"


def test_cluster_changes_azure_cannot_apply_in_place_replace_it_deleting_first(run: Run) -> None:
    for compute in run.of_type(_COMPUTE):
        assert set(compute.replace_on_changes) == {
            "properties.computeType",
            "properties.properties.vmSize",
            "properties.properties.vmPriority",
            "properties.properties.osType",
            "properties.properties.remoteLoginPortPublicAccess",
        }
        # Scale settings are the one thing the AmlCompute update API takes: in place.
        assert not any("scaleSettings" in path for path in compute.replace_on_changes)
        # The name is fixed by config, so the old cluster must be deleted first.
        assert compute.delete_before_replace is True


def test_workspace_links_to_the_resources_created_with_it(run: Run) -> None:
    workspace = run.one("azure-native:machinelearningservices:Workspace")
    insights = run.one("azure-native:applicationinsights:Component")
    assert workspace.inputs["storageAccount"] == run.one("azure-native:storage:StorageAccount").id
    assert workspace.inputs["keyVault"] == run.one("azure-native:keyvault:Vault").id
    assert workspace.inputs["applicationInsights"] == insights.id
    assert workspace.inputs["containerRegistry"] == (
        run.one("azure-native:containerregistry:Registry").id
    )
    assert insights.inputs["workspaceResourceId"] == (
        run.one("azure-native:operationalinsights:Workspace").id
    )
    assert workspace.inputs["identity"] == {"type": "SystemAssigned"}
    assert workspace.inputs["publicNetworkAccess"] == run.settings.public_network_access.value


def test_storage_account_is_https_only_tls12_and_private(run: Run) -> None:
    account = run.one("azure-native:storage:StorageAccount").inputs
    assert account["kind"] == "StorageV2"
    assert account["enableHttpsTrafficOnly"] is True
    assert account["minimumTlsVersion"] == "TLS1_2"
    assert account["allowBlobPublicAccess"] is False


def test_key_vault_uses_rbac_soft_delete_and_configured_purge_protection(run: Run) -> None:
    properties = run.one("azure-native:keyvault:Vault").inputs["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["tenantId"] == TENANT_ID
    purge = properties.get("enablePurgeProtection", False)
    assert purge is run.settings.key_vault_purge_protection


def test_every_azure_name_is_valid_for_its_resource_type(run: Run) -> None:
    for typ, (name_input, rule) in NAME_INPUTS.items():
        for registration in run.of_type(typ):
            name = registration.inputs[name_input]
            assert RULES[rule].fullmatch(name), f"{typ} name {name!r} breaks the {rule} rule"


def _taggable(typ: str) -> bool:
    """Whether an azure-native resource type takes tags (read from the SDK's own signature)."""
    package, module, cls_name = typ.split(":")
    if package != "azure-native":
        return False
    sdk_module = __import__(f"pulumi_azure_native.{module}", fromlist=[cls_name])
    init = getattr(sdk_module, cls_name)._internal_init
    return "tags" in inspect.signature(init).parameters


def test_every_taggable_resource_carries_project_stack_and_managed_by(run: Run) -> None:
    expected = {"project": "azureml-pipelines", "stack": run.stack, "managed-by": "pulumi"}
    taggable = [r for r in run.registrations if r.custom and _taggable(r.type)]
    assert len(taggable) >= 8
    for registration in taggable:
        tags = registration.inputs.get("tags", {})
        assert expected.items() <= tags.items(), f"{registration.type} {registration.name}: {tags}"


def test_children_are_parented_and_named_after_their_component(run: Run) -> None:
    components = {r.urn: r for r in run.registrations if not r.custom}
    assert {c.type for c in components.values()} >= {
        "azureml-pipelines:workspace:Workspace",
        "azureml-pipelines:compute:ComputeCluster",
        "azureml-pipelines:image:TrainingImage",
    }
    assert all(c.type.startswith("azureml-pipelines:") for c in components.values())
    for registration in run.registrations:
        if registration.custom:
            parent = components.get(registration.parent)
            assert parent is not None, f"{registration.type} {registration.name} has no component"
            assert registration.name.startswith(f"{parent.name}-")


def test_every_component_registers_its_outputs_in_one_key_style(run: Run) -> None:
    # register_outputs last, keys camelCase like the stack outputs (state and `pulumi stack
    # --show-urns` show them; a mix of styles was one of issue 9's findings).
    components = {r.urn: r for r in run.registrations if not r.custom}
    assert set(run.component_outputs) == set(components)
    for urn, keys in run.component_outputs.items():
        assert keys, f"{components[urn].type} registers no outputs"
        odd = [k for k in keys if not re.fullmatch(r"[a-z][a-zA-Z0-9]*", k)]
        assert odd == [], f"{components[urn].type}: {odd}"


def test_the_mocks_answer_each_dynamic_resource_with_the_keys_its_provider_reports(
    run: Run,
) -> None:
    # The stand-in checked against the real thing: the outputs models the providers dump.
    from infra.provider.adf_trigger import TriggerOutputs
    from infra.provider.azureml_v2.deployment import DeploymentOutputs
    from infra.provider.azureml_v2.dynamic import ComponentOutputs, DefaultOutputs
    from infra.provider.props import EndpointOutputs, ScheduleOutputs

    models: dict[str, type[Any]] = {
        "pulumi-python:dynamic/azureml:PipelineEndpoint": EndpointOutputs,
        "pulumi-python:dynamic/azureml:PipelineSchedule": ScheduleOutputs,
        "pulumi-python:dynamic/datafactory:Trigger": TriggerOutputs,
        "pulumi-python:dynamic/azureml:PipelineComponentV2": ComponentOutputs,
        "pulumi-python:dynamic/azureml:DefaultDeploymentV2": DefaultOutputs,
        "pulumi-python:dynamic/azureml:BatchDeploymentV2": DeploymentOutputs,
    }
    dynamic = [r for r in run.registrations if r.type.startswith("pulumi-python:dynamic/")]
    assert dynamic
    for registration in dynamic:
        expected = set(models[registration.type].model_fields)
        assert set(registration.outputs) - {"__provider"} == expected, registration.name


def test_image_is_tagged_by_context_hash_and_pushed_without_credentials(run: Run) -> None:
    registry = run.one("azure-native:containerregistry:Registry")
    login_server = registry.outputs["loginServer"]
    images = run.of_type("docker-build:index:Image")
    assert len(images) == len(run.settings.images)
    for key, image in run.settings.images.items():
        tag = build_context_tag(REPO_ROOT / image.context, dict(image.build_args))
        (built,) = [i for i in images if i.inputs["tags"] == [f"{login_server}/{key}:{tag}"]]
        # The harness runs the program from the repository root.
        # The staged copy of the context (normalized modes), relative to the project root.
        context = REPO_ROOT / image.context
        staged = stage_context(context, context / image.dockerfile, REPO_ROOT)
        assert built.inputs["context"] == {
            "location": staged.context.relative_to(REPO_ROOT).as_posix()
        }
        assert built.inputs["dockerfile"] == {
            "location": staged.dockerfile.relative_to(REPO_ROOT).as_posix()
        }
        assert built.inputs["context"]["location"].startswith(".amlpipe/image-contexts/")
        assert built.inputs["push"] is True
        assert built.inputs["buildOnPreview"] is False
        # No registry credentials in inputs: they would be stored in the Pulumi state.
        assert "registries" not in built.inputs
        assert run.exports["imageRefs"][key] == built.outputs["ref"]
        assert "@sha256:" in run.exports["imageRefs"][key]


def test_no_input_holds_a_machine_specific_path(run: Run) -> None:
    # Inputs are stored in the state: a checkout path in them would differ between machines.
    for registration in run.registrations:
        assert str(REPO_ROOT) not in json.dumps(registration.inputs), registration.name


@pytest.mark.parametrize("cwd", [".", "infra", "pipeline_defs"])
def test_image_paths_are_relative_to_the_project_root_whatever_the_working_directory(
    cwd: str,
) -> None:
    # The docker-build plugin resolves them against the program folder, the project root (no
    # `main:`); the same inputs from any working directory means no rebuild from another one.
    done = run_harness(REPO_ROOT / "Pulumi.dev.yaml", cwd=REPO_ROOT / cwd)
    assert done.returncode == 0, done.stderr
    (image,) = [
        r
        for r in json.loads(done.stdout)["registrations"]
        if r["type"] == "docker-build:index:Image"
    ]
    staged = stage_context(REPO_ROOT / "docker", REPO_ROOT / "docker" / "Dockerfile", REPO_ROOT)
    location = staged.context.relative_to(REPO_ROOT).as_posix()
    assert image["inputs"]["context"] == {"location": location}
    assert image["inputs"]["dockerfile"] == {"location": f"{location}/Dockerfile"}


def test_stack_outputs_describe_the_deployment(run: Run) -> None:
    workspace = run.one("azure-native:machinelearningservices:Workspace")
    exports = run.exports
    assert exports["workspaceName"] == workspace.inputs["workspaceName"]
    assert exports["workspaceId"] == workspace.id
    assert exports["resourceGroupName"] == workspace.inputs["resourceGroupName"]
    assert exports["subscriptionId"] == SUBSCRIPTION_ID
    assert exports["registryLoginServer"].endswith(".azurecr.io")
    assert exports["clusterNames"] == list(run.settings.cluster_names)
    assert exports["studioUrl"].startswith("https://ml.azure.com/?wsid=/subscriptions/")
    assert exports["workspaceName"] in exports["studioUrl"]


def test_dev_uses_small_low_priority_clusters_and_pauses_schedules() -> None:
    run = run_stack(REPO_ROOT / "Pulumi.dev.yaml")
    assert not run.settings.schedules_enabled
    for cluster in run.settings.clusters:
        assert cluster.priority is Priority.LOW_PRIORITY
        assert cluster.max_nodes <= 2


def test_prod_uses_dedicated_clusters_schedules_and_purge_protection() -> None:
    run = run_stack(REPO_ROOT / "Pulumi.prod.yaml")
    assert run.settings.schedules_enabled
    assert run.settings.key_vault_purge_protection
    vault = run.one("azure-native:keyvault:Vault")
    assert vault.inputs["properties"]["enablePurgeProtection"] is True
    assert all(c.priority is Priority.DEDICATED for c in run.settings.clusters)


# --- Pipeline resources (dynamic provider), wired by the program -----------------------------

_ENDPOINT = "pulumi-python:dynamic/azureml:PipelineEndpoint"
_SCHEDULE = "pulumi-python:dynamic/azureml:PipelineSchedule"


def _needs_v1(run: Run) -> None:
    """These tests are about v1 endpoints; v2 stacks have tests/azureml_v2/test_v2_program.py."""
    if Api.V1 not in run.settings.apis:
        pytest.skip(f"stack {run.stack} publishes with Azure ML v2 only")


def _definitions() -> list[Any]:
    from infra.definitions import load_definitions

    return list(load_definitions([REPO_ROOT / "pipeline_defs"]).raise_if_invalid())


def test_every_definition_becomes_an_endpoint_with_its_schedules(run: Run) -> None:
    _needs_v1(run)
    definitions = _definitions()
    endpoints = {e.inputs["name"]: e for e in run.of_type(_ENDPOINT)}
    schedules = {(s.inputs["endpoint_id"], s.inputs["name"]) for s in run.of_type(_SCHEDULE)}

    assert set(endpoints) == {d.spec.name for d in definitions}
    expected = {
        (endpoints[d.spec.name].outputs["endpoint_id"], f"{d.spec.name}-{s.name}")
        for d in definitions
        for s in d.spec.schedules
    }
    assert schedules == expected


def test_endpoints_run_in_the_pushed_image_on_the_stack_workspace(run: Run) -> None:
    _needs_v1(run)
    image = run.one("docker-build:index:Image")
    workspace = run.one("azure-native:machinelearningservices:Workspace")
    for endpoint in run.of_type(_ENDPOINT):
        assert endpoint.inputs["images"] == {"training": image.outputs["ref"]}
        assert endpoint.inputs["workspace_name"] == workspace.inputs["workspaceName"]
        assert endpoint.inputs["subscription_id"] == SUBSCRIPTION_ID
        assert endpoint.inputs["version_retention"] == run.settings.version_retention
        # Each step is readable in a preview: what it runs and a short code hash.
        for step in endpoint.inputs["steps"].values():
            assert step["run"] and len(step["code_hash"]) == 16


def test_schedules_follow_the_stack_switch_and_their_own_flag(run: Run) -> None:
    _needs_v1(run)
    enabled_in_definition = {
        f"{d.spec.name}-{s.name}": s.enabled for d in _definitions() for s in d.spec.schedules
    }
    for schedule in run.of_type(_SCHEDULE):
        expected = run.settings.schedules_enabled and enabled_in_definition[schedule.inputs["name"]]
        assert schedule.inputs["enabled"] is expected, schedule.inputs["name"]


def test_dev_creates_every_schedule_paused() -> None:
    run = run_stack(REPO_ROOT / "Pulumi.dev.yaml")

    schedules = run.of_type(_SCHEDULE)
    assert schedules
    assert all(s.inputs["enabled"] is False for s in schedules)


def test_stack_outputs_list_each_endpoint_rest_url(run: Run) -> None:
    _needs_v1(run)
    urls = run.exports["pipelineEndpoints"]

    assert set(urls) == {d.spec.name for d in _definitions()}
    for endpoint in run.of_type(_ENDPOINT):
        assert urls[endpoint.inputs["name"]] == endpoint.outputs["rest_url"]


def test_a_definition_naming_a_missing_cluster_stops_the_program(tmp_path: Path) -> None:
    stack = tmp_path / "Pulumi.nocpu.yaml"
    stack.write_text(
        "config:\n"
        "  azureml-pipelines:clusters:\n"
        "    - {name: gpu-cluster, vmSize: Standard_NC6s_v3, maxNodes: 1}\n",
        encoding="utf-8",
    )

    done = run_harness(stack)

    assert done.returncode != 0
    assert "pipeline_defs/churn-train/pipeline.yaml:7: compute: unknown compute 'cpu-cluster'" in (
        done.stderr
    )


@pytest.mark.parametrize(
    ("file_name", "config", "expected"),
    [
        (
            "Pulumi.badname.yaml",
            "  azureml-pipelines:clusters:\n"
            "    - {name: cpu-, vmSize: Standard_DS3_v2, maxNodes: 1}\n",
            "azureml-pipelines:clusters[0].name: 'cpu-' is not allowed",
        ),
        (
            "Pulumi.closed.yaml",
            "  azureml-pipelines:publicNetworkAccess: Disabled\n",
            "azureml-pipelines:publicNetworkAccess: Disabled is not supported",
        ),
        (
            # Differs from the repository's Pulumi.dev.yaml only by case: same resource names.
            "Pulumi.Dev.yaml",
            "  azureml-pipelines:location: westeurope\n",
            "stack 'Dev': maps to the same resource names as stack 'dev' (Pulumi.dev.yaml)",
        ),
    ],
    ids=["cluster-name", "public-network-disabled", "colliding-stack"],
)
def test_settings_azure_would_reject_stop_the_program_before_any_resource(
    tmp_path: Path, file_name: str, config: str, expected: str
) -> None:
    stack = tmp_path / file_name
    stack.write_text("config:\n" + config, encoding="utf-8")
    done = run_harness(stack)
    assert done.returncode != 0
    assert "invalid stack configuration" in done.stderr
    assert expected in done.stderr
    # The settings are read first: no resource was registered (the harness prints no record).
    assert done.stdout == ""


_DATA_HOLDERS = {
    "azure-native:storage:StorageAccount",
    "azure-native:keyvault:Vault",
    "azure-native:containerregistry:Registry",
    "azure-native:operationalinsights:Workspace",
    "azure-native:machinelearningservices:Workspace",
}


def test_resources_holding_data_are_protected_where_the_stack_keeps_data(run: Run) -> None:
    for registration in run.registrations:
        if registration.type in _DATA_HOLDERS:
            assert registration.protect is run.settings.protect_data, registration.name
        elif registration.custom:
            assert registration.protect is False, registration.name


def test_prod_keeps_its_data_and_dev_is_disposable() -> None:
    assert run_stack(REPO_ROOT / "Pulumi.prod.yaml").settings.protect_data is True
    assert run_stack(REPO_ROOT / "Pulumi.prod.yaml").settings.name_generation == 0
    assert run_stack(REPO_ROOT / "Pulumi.dev.yaml").settings.protect_data is False


def test_a_new_name_generation_redeploys_under_fresh_workspace_and_vault_names(
    tmp_path: Path,
) -> None:
    # After `pulumi destroy`, the workspace (14 days) and key vault (90 days, or for good with
    # purge protection) names stay taken; the next generation moves on to new ones.
    again = tmp_path / "Pulumi.dev.yaml"
    again.write_text(
        (REPO_ROOT / "Pulumi.dev.yaml").read_text(encoding="utf-8")
        + "  azureml-pipelines:nameGeneration: 1\n",
        encoding="utf-8",
    )
    before, after = run_stack(REPO_ROOT / "Pulumi.dev.yaml"), run_stack(again)
    renamed = set()
    for typ, (name_input, _) in NAME_INPUTS.items():
        old = sorted(r.inputs[name_input] for r in before.of_type(typ))
        new = sorted(r.inputs[name_input] for r in after.of_type(typ))
        if old != new:
            renamed.add(typ)
    assert renamed == {
        "azure-native:keyvault:Vault",
        "azure-native:machinelearningservices:Workspace",
        # Cluster identities are named after the workspace.
        "azure-native:managedidentity:UserAssignedIdentity",
    }
