"""Run the real Pulumi program (the project's `__main__.py`) under recording mocks, per stack file.

    python tests/program/mock_program.py Pulumi.dev.yaml   # prints a JSON record of the run

The mocks play the engine and the providers: every resource registration is recorded (type, name,
parent, dependencies overall and per input, resource options, inputs, outputs) and answered with
outputs shaped like the real provider's (ARM ids, registry login server, identity principal id,
image digest). Anything the mocks do not know on purpose — an invoke other than
`getClientConfig`/`getFactory`, a resource type without an output model — raises, so a new
dependency of the program cannot slip through as an accepted blank.

How registrations are recorded (decided, with the alternatives weighed):

`Mocks.new_resource` receives type, name and inputs but not the parent, the dependencies or the
resource options (protect, replaceOnChanges, deleteBeforeReplace, ignoreChanges, retainOnDelete)
that the tests check (a known gap: pulumi/pulumi#8342, #14421). Those travel in the engine's
`RegisterResourceRequest`. The harness therefore passes its own monitor through the public
`monitor=` parameter of `pulumi.runtime.set_mocks` (typed `MockMonitor`), and that monitor reads
only the public gRPC contract: the fields of `resource_pb2.RegisterResourceRequest`, the URN of
the response and the output keys of a `RegisterResourceOutputsRequest`. Inputs, id and outputs
are not decoded from the wire; they are taken from what `new_resource` received (already
deserialized by the SDK) and answered, joined per call: the SDK answers a registration on the
thread that made it, and the join checks type and name, so if that ever changes the run fails
loudly instead of recording blanks. No private SDK state (the monitor's
`resources` map) and no `pulumi.runtime.rpc` calls are used; `tests/program/
test_recording_mocks.py` runs a probe program with a known child, explicit and implicit
dependencies and every option, and fails if the recording stops seeing any of them.

Not chosen:
- A recording `ResourceMonitorServicer` on loopback (the program talking gRPC to a fake engine):
  the most literal seam, but the harness would have to encode and decode the engine's property
  format itself (secrets, unknowns, resource references, output values) or call the SDK's `rpc`
  module for it, i.e. re-implement or reach into exactly what the mocks already do, and every
  registration would become a loopback round trip that bench/program_eval.py would then measure
  instead of the program.
- Resource transforms (`register_resource_transform`): they see the options the program wrote but
  not the dependencies the SDK derives from Output inputs, nor the URNs the engine assigns.

It runs in its own process per stack (tests and bench start it as a subprocess) so that config,
the root stack resource and `sys.modules` start clean: the record says which `azureml` modules
were loaded, and that must be none.
"""

from __future__ import annotations

import hashlib
import json
import os
import runpy
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import get_root_resource
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime.proto import resource_pb2

from infra import stack_files

# Run as a script (`python tests/program/mock_program.py`, as tests and bench start it), so the
# repository's own test helpers are not importable here: read the stack files through infra.
REPO_ROOT = Path(__file__).resolve().parents[2]


def project() -> dict[str, Any]:
    return stack_files.load_project(REPO_ROOT)


def project_name() -> str:
    return stack_files.project_name(REPO_ROOT)


def stack_config(path: Path) -> dict[str, str]:
    return stack_files.stack_config(REPO_ROOT, path)


stack_name = stack_files.stack_name

# The program folder, as the language host finds it: `main:` in Pulumi.yaml, else the project root.
MAIN = (REPO_ROOT / str(project().get("main") or ".")).resolve()
SUBSCRIPTION_ID = "11111111-2222-3333-4444-555555555555"
TENANT_ID = "99999999-8888-7777-6666-555555555555"
CLIENT_CONFIG = "azure-native:authorization:getClientConfig"
STACK_TYPE = "pulumi:pulumi:Stack"


class UnmockedError(AssertionError):
    """The program asked for something these mocks do not model."""


@dataclass
class Registration:
    """One resource the program registered."""

    urn: str
    type: str
    name: str
    custom: bool
    parent: str
    id: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    replace_on_changes: list[str] = field(default_factory=list)
    """Input paths whose change the engine turns into a replacement (the resource option)."""
    delete_before_replace: bool = False
    protect: bool = False
    dependencies: list[str] = field(default_factory=list)
    """URNs this resource waits for (`depends_on` and the resources its inputs come from)."""
    ignore_changes: list[str] = field(default_factory=list)
    retain_on_delete: bool = False
    property_dependencies: dict[str, list[str]] = field(default_factory=dict)
    """Per input property, the URNs its value comes from (what the engine makes unknown in a
    preview while those resources are still to be created)."""


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


# Output models: resource type -> (inputs -> (id, computed outputs)), shaped like the real
# provider's answers (ARM ids, login server, principal ids, image digest).
OutputModel = Callable[[dict[str, Any]], tuple[str, dict[str, Any]]]


def _group_prefix(inputs: dict[str, Any]) -> str:
    return f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups/{inputs['resourceGroupName']}"


def _arm_model(arm_type: str, name_key: str) -> OutputModel:
    """A resource-group-scoped ARM resource named by the input `name_key`."""

    def model(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        name = inputs[name_key]
        return f"{_group_prefix(inputs)}/providers/{arm_type}/{name}", {"name": name}

    return model


def _resource_group(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    return _group_prefix(inputs), {"name": inputs["resourceGroupName"]}


def _registry(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resource_id, outputs = _arm_model("Microsoft.ContainerRegistry/registries", "registryName")(
        inputs
    )
    return resource_id, {**outputs, "loginServer": f"{outputs['name'].lower()}.azurecr.io"}


def _identity(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resource_id, outputs = _arm_model(
        "Microsoft.ManagedIdentity/userAssignedIdentities", "resourceName"
    )(inputs)
    computed = {
        "principalId": _uuid("principal", resource_id),
        "clientId": _uuid("client", resource_id),
        "tenantId": TENANT_ID,
    }
    return resource_id, {**outputs, **computed}


def _compute(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # The API takes identity ids as a list and answers with a map id -> identity details.
    identity = dict(inputs.get("identity") or {})
    identity["userAssignedIdentities"] = {
        ident: {"principalId": _uuid("principal", ident), "clientId": _uuid("client", ident)}
        for ident in identity.get("userAssignedIdentities", [])
    }
    workspace = f"{_group_prefix(inputs)}/providers/Microsoft.MachineLearningServices/workspaces"
    resource_id = f"{workspace}/{inputs['workspaceName']}/computes/{inputs['computeName']}"
    return resource_id, {"name": inputs["computeName"], "identity": identity}


def _role_assignment(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    guid = _uuid(inputs["scope"], inputs["principalId"], inputs["roleDefinitionId"])
    return f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{guid}", {
        "name": guid
    }


def _image(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (tag,) = inputs["tags"]
    digest = "sha256:" + hashlib.sha256(tag.encode()).hexdigest()
    return digest, {"digest": digest, "ref": f"{tag}@{digest}"}


def _pipeline_endpoint(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # What the dynamic provider reports after a first publish: version "0" is the default.
    endpoint_id = _uuid("endpoint", inputs["name"])
    pipeline_id = _uuid("published", inputs["name"], inputs["content_hash"])
    return endpoint_id, {
        "endpoint_id": endpoint_id,
        "rest_url": f"https://{inputs['name']}.api.azureml.ms/pipelines/v1.0/{endpoint_id}",
        "status": "Active",
        "default_version": "0",
        "published_pipeline_id": pipeline_id,
        "default_content_hash": inputs["content_hash"],
        "enabled_versions": ["0"],
    }


def _pipeline_schedule(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # What the provider reports after creating it: its inputs (`enabled` read back live) and the
    # id; a schedule has no separate status output.
    schedule_id = _uuid("schedule", inputs["name"])
    return schedule_id, {"schedule_id": schedule_id}


def _factory(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # A system-assigned identity gets its principal id from Entra ID when the factory is created.
    resource_id, outputs = _arm_model("Microsoft.DataFactory/factories", "factoryName")(inputs)
    identity = dict(inputs.get("identity") or {})
    if identity.get("type") == "SystemAssigned":
        identity.update(principalId=_uuid("principal", resource_id), tenantId=TENANT_ID)
    return resource_id, {**outputs, "identity": identity}


def _factory_child(collection: str, name_key: str) -> OutputModel:
    """A factory sub-resource (linked service, pipeline, trigger) named by `name_key`."""

    def model(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        factory = f"{_group_prefix(inputs)}/providers/Microsoft.DataFactory/factories"
        name = inputs[name_key]
        return f"{factory}/{inputs['factoryName']}/{collection}/{name}", {"name": name}

    return model


def _adf_trigger(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # What the trigger provider reports after writing it and starting it (or not).
    factory = (
        f"/subscriptions/{inputs['subscription_id']}/resourceGroups/{inputs['resource_group']}"
        f"/providers/Microsoft.DataFactory/factories/{inputs['factory_name']}"
    )
    trigger_id = f"{factory}/triggers/{inputs['name']}"
    state = "Started" if inputs["started"] else "Stopped"
    return trigger_id, {"trigger_id": trigger_id, "runtime_state": state}


def _ml_child(collection: str, *name_keys: str) -> OutputModel:
    """A workspace sub-resource (environment version, batch endpoint, schedule, ...)."""

    def model(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        workspace = (
            f"{_group_prefix(inputs)}/providers/Microsoft.MachineLearningServices/workspaces"
        )
        path = "/".join(
            part
            for key, part in zip(name_keys, collection.split("|"), strict=True)
            for part in (part, inputs[key])
        )
        return f"{workspace}/{inputs['workspaceName']}/{path}", {"name": inputs[name_keys[-1]]}

    return model


def _batch_endpoint(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resource_id, outputs = _ml_child("batchEndpoints", "endpointName")(inputs)
    name, location = inputs["endpointName"], inputs["location"]
    properties = {
        **inputs["properties"],
        "scoringUri": f"https://{name}.{location}.inference.ml.azure.com/jobs",
        "provisioningState": "Succeeded",
    }
    return resource_id, {**outputs, "properties": properties}


def _pipeline_component_v2(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    workspace = (
        f"/subscriptions/{inputs['subscription_id']}/resourceGroups/{inputs['resource_group']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{inputs['workspace_name']}"
    )
    component_id = f"{workspace}/components/{inputs['component']}/versions/{inputs['version']}"
    # Sorted: the order of `steps` in the inputs is not part of their meaning (a map).
    created = sorted(f"{s}:{v['version']}" for s, v in inputs["steps"].items())
    return component_id, {"component_id": component_id, "created": created}


def _default_deployment_v2(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # What the provider reports after a first switch: only this deployment kept, none before.
    return f"{inputs['endpoint']}/default", {"kept": [inputs["deployment"]], "previous": ""}


def _batch_deployment_v2(inputs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    # What the provider reports after creating a deployment that did not exist yet.
    return f"{inputs['endpoint']}/{inputs['deployment']}", {"adopted": False}


# An existing factory the stack may name (`dataFactory.existing`), as `getFactory` returns it.
EXISTING_FACTORIES = {"adf-shared": {"identity": {"type": "SystemAssigned"}}, "adf-no-identity": {}}
GET_FACTORY = "azure-native:datafactory:getFactory"


def _get_factory(args: dict[str, Any]) -> dict[str, Any]:
    name = args["factoryName"]
    if name not in EXISTING_FACTORIES:
        raise UnmockedError(f"no existing factory {name!r} in EXISTING_FACTORIES")
    resource_id, outputs = _factory({**args, **EXISTING_FACTORIES[name]})
    return {"id": resource_id, "location": "westeurope", **outputs}


OUTPUT_MODELS: dict[str, OutputModel] = {
    "azure-native:resources:ResourceGroup": _resource_group,
    "azure-native:storage:StorageAccount": _arm_model(
        "Microsoft.Storage/storageAccounts", "accountName"
    ),
    "azure-native:keyvault:Vault": _arm_model("Microsoft.KeyVault/vaults", "vaultName"),
    "azure-native:operationalinsights:Workspace": _arm_model(
        "Microsoft.OperationalInsights/workspaces", "workspaceName"
    ),
    "azure-native:applicationinsights:Component": _arm_model(
        "Microsoft.Insights/components", "resourceName"
    ),
    "azure-native:machinelearningservices:Workspace": _arm_model(
        "Microsoft.MachineLearningServices/workspaces", "workspaceName"
    ),
    "azure-native:containerregistry:Registry": _registry,
    "azure-native:managedidentity:UserAssignedIdentity": _identity,
    "azure-native:machinelearningservices:Compute": _compute,
    "azure-native:authorization:RoleAssignment": _role_assignment,
    "docker-build:index:Image": _image,
    "pulumi-python:dynamic/azureml:PipelineEndpoint": _pipeline_endpoint,
    "pulumi-python:dynamic/azureml:PipelineSchedule": _pipeline_schedule,
    "azure-native:machinelearningservices:EnvironmentVersion": _ml_child(
        "environments|versions", "name", "version"
    ),
    "azure-native:machinelearningservices:BatchEndpoint": _batch_endpoint,
    "azure-native:machinelearningservices:BatchDeployment": _ml_child(
        "batchEndpoints|deployments", "endpointName", "deploymentName"
    ),
    "azure-native:machinelearningservices:Schedule": _ml_child("schedules", "name"),
    "pulumi-python:dynamic/azureml:PipelineComponentV2": _pipeline_component_v2,
    "pulumi-python:dynamic/azureml:DefaultDeploymentV2": _default_deployment_v2,
    "pulumi-python:dynamic/azureml:BatchDeploymentV2": _batch_deployment_v2,
    "azure-native:datafactory:Factory": _factory,
    "azure-native:datafactory:LinkedService": _factory_child("linkedservices", "linkedServiceName"),
    "azure-native:datafactory:Pipeline": _factory_child("pipelines", "pipelineName"),
    "pulumi-python:dynamic/datafactory:Trigger": _adf_trigger,
}


@dataclass(frozen=True)
class Answer:
    """What `Mocks.new_resource` received and answered for one registration."""

    typ: str
    name: str
    inputs: dict[str, Any]
    id: str | None
    outputs: dict[str, Any]


class RecordingMocks(pulumi_mocks.Mocks):
    """Engine mocks that record registrations and answer only what they model."""

    def __init__(self, project: str) -> None:
        self.project = project
        self.registrations: list[Registration] = []
        self.calls: list[str] = []
        self.component_outputs: dict[str, list[str]] = {}
        """Component URN -> the keys of the outputs it registered (`register_outputs`)."""
        # The SDK registers from a thread pool; each thread's registration is answered on that
        # same thread (see RecordingMonitor), so the last answer is kept per thread.
        self._answers = threading.local()

    def call(self, args: pulumi_mocks.MockCallArgs) -> tuple[dict, list[tuple[str, str]]]:
        self.calls.append(args.token)
        if args.token == CLIENT_CONFIG:
            outputs = {
                "clientId": _uuid("client"),
                "objectId": _uuid("object"),
                "subscriptionId": SUBSCRIPTION_ID,
                "tenantId": TENANT_ID,
            }
            return outputs, []
        if args.token == GET_FACTORY:
            return _get_factory(dict(args.args)), []
        raise UnmockedError(f"unmocked invoke {args.token} (args {args.args})")

    def new_resource(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        resource_id, outputs = self._answer(args)
        self._answers.last = Answer(args.typ, args.name, dict(args.inputs), resource_id, outputs)
        return resource_id, outputs

    def _answer(self, args: pulumi_mocks.MockResourceArgs) -> tuple[str | None, dict]:
        if not args.custom:
            if not args.typ.startswith(f"{self.project}:"):
                raise UnmockedError(f"unexpected component type {args.typ}")
            return None, {}
        model = OUTPUT_MODELS.get(args.typ)
        if model is None:
            raise UnmockedError(
                f"no output model for resource type {args.typ} ({args.name}): add one to "
                "OUTPUT_MODELS in tests/program/mock_program.py"
            )
        # Providers echo their inputs and add what they compute.
        resource_id, computed = model(dict(args.inputs))
        return resource_id, {**args.inputs, **computed}

    def forget_answer(self) -> None:
        """Drop this thread's last answer (before a registration asks for a new one)."""
        self._answers.last = None

    def take_answer(self, typ: str, name: str) -> Answer:
        """This thread's answer to the registration of `typ` `name`; raises if there was none."""
        answer: Answer | None = getattr(self._answers, "last", None)
        self._answers.last = None
        if answer is None or (answer.typ, answer.name) != (typ, name):
            raise UnmockedError(
                f"registration of {typ} {name} was not answered by new_resource on its own "
                f"thread (last answer: {answer}): the recording cannot join it with its inputs"
            )
        return answer


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """The SDK's mock monitor, recording what each registration asked the engine for.

    It reads only the request and response of the engine's RegisterResource RPC (the public
    `resource_pb2` messages) and joins them with what the mocks answered for the same call."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def RegisterResource(
        self, request: resource_pb2.RegisterResourceRequest
    ) -> resource_pb2.RegisterResourceResponse:
        if request.type == STACK_TYPE:
            return super().RegisterResource(request)
        self.recording.forget_answer()
        response = super().RegisterResource(request)
        answer = self.recording.take_answer(request.type, request.name)
        self.recording.registrations.append(
            Registration(
                urn=response.urn,
                type=request.type,
                name=request.name,
                custom=bool(request.custom),
                parent=request.parent,
                id=answer.id,
                inputs=answer.inputs,
                outputs=answer.outputs,
                replace_on_changes=list(request.replaceOnChanges),
                delete_before_replace=bool(request.deleteBeforeReplace),
                protect=bool(request.protect),
                dependencies=sorted(request.dependencies),
                ignore_changes=list(request.ignoreChanges),
                retain_on_delete=bool(request.retainOnDelete),
                property_dependencies={
                    key: sorted(deps.urns)
                    for key, deps in request.propertyDependencies.items()
                    if deps.urns
                },
            )
        )
        return response

    def RegisterResourceOutputs(self, request: resource_pb2.RegisterResourceOutputsRequest) -> Any:
        # Only the keys are recorded (the values are the component's attributes, checked
        # through its children); read from the request's Struct, not decoded.
        if request.urn.split("::")[2] != STACK_TYPE:
            self.recording.component_outputs[request.urn] = sorted(request.outputs.fields)
        return super().RegisterResourceOutputs(request)


@dataclass
class ProgramRun:
    """What one run of the program did."""

    stack: str
    config: dict[str, str]
    registrations: list[Registration]
    calls: list[str]
    exports: dict[str, Any]
    azureml_modules: list[str]
    seconds: float
    azure_native_services: list[str] = field(default_factory=list)
    component_outputs: dict[str, list[str]] = field(default_factory=dict)
    """Component URN -> keys of the outputs it registered."""


def run_program(stack_file: Path, main: Path = MAIN) -> ProgramRun:
    """Run `main` with the config of `stack_file` (project defaults applied) under the mocks.

    When the environment carries `PULUMI_CONFIG` (as the language host passes it to a program,
    see tests/launch), the program reads its config from there, as under the CLI."""
    project, stack = project_name(), stack_name(stack_file)
    config = stack_config(stack_file)
    if "PULUMI_CONFIG" not in os.environ:
        pulumi.runtime.set_all_config(config)
    mocks = RecordingMocks(project)
    pulumi.runtime.set_mocks(
        mocks, project=project, stack=stack, preview=False, monitor=RecordingMonitor(mocks)
    )
    started = time.perf_counter()
    exports: dict[str, Any] = {}

    # pulumi.runtime.test runs the function, awaits the Output it returns and every outstanding
    # registration, and re-raises what the program raised: a whole program run under the mocks.
    @pulumi.runtime.test
    def run() -> pulumi.Output[None]:
        runpy.run_path(str(main), run_name="__main__")
        root = get_root_resource()
        assert root is not None
        outputs = pulumi.Output.from_input(getattr(root, "outputs", {}))
        return outputs.apply(lambda values: exports.update(values or {}))

    run()
    seconds = time.perf_counter() - started
    # Neither Azure ML SDK may be loaded by the program: azureml (v1) nor azure-ai-ml (v2).
    loaded = sorted(
        m for m in sys.modules if m == "azureml" or m.startswith(("azureml.", "azure.ai.ml"))
    )
    # Service modules of azure-native whose classes were loaded (the package loads them lazily).
    services = sorted(
        {
            m.split(".")[1]
            for m in sys.modules
            if m.startswith("pulumi_azure_native.") and m.endswith("._inputs")
        }
    )
    return ProgramRun(
        stack,
        config,
        mocks.registrations,
        mocks.calls,
        exports or {},
        loaded,
        seconds,
        services,
        mocks.component_outputs,
    )


def _json_default(value: Any) -> Any:
    """The record's dataclasses as their fields (what `asdict` gives), anything else as text."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in fields(value)}
    return str(value)


def main(argv: list[str]) -> int:
    """CLI: run the program for one stack file and print the run as JSON.

    `--program DIR` runs that program folder (relative to the working directory, as the language
    host's `pulumi-language-python-exec` takes it) instead of the project's."""
    main_dir = MAIN
    if argv[:1] == ["--program"] and len(argv) >= 2:
        main_dir, argv = Path(argv[1]).resolve(), argv[2:]
    if len(argv) != 1:
        print("usage: mock_program.py [--program DIR] Pulumi.<stack>.yaml", file=sys.stderr)
        return 2
    try:
        run = run_program(Path(argv[0]).resolve(), main_dir)
    except pulumi.RunError as exc:
        # As the language host reports a RunError: its message alone, no traceback, a failed run.
        print(f"error: {exc}", file=sys.stderr)
        return 1
    # One write of the whole record, dataclasses taken field by field: `asdict` deep-copies every
    # registration and `json.dump` writes in small pieces, which at hundreds of pipelines cost
    # as much as the program itself (bench/program_eval.py times the whole process).
    sys.stdout.write(json.dumps(run, default=_json_default))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
