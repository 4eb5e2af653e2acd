"""DataFactory component: Azure Data Factory starts the stack's published pipelines.

What it registers (all pulumi-azure-native `datafactory` / `authorization`):

- the factory, with a system-assigned identity (or an existing factory, read with `get_factory`);
- an `AzureMLService` linked service to the stack's workspace, authenticated as that identity
  (`authentication: MSI`: no key, no service-principal secret anywhere);
- a role assignment of the factory identity on the workspace (AzureML Data Scientist unless the
  stack asks for Contributor; see README "Triggering from Data Factory");
- per definition, an ADF pipeline that runs the definition through the stack's active API:
  - v1: one `AzureMLExecutePipeline` activity (through an `AzureMLService` linked service, made
    only when some definition runs on v1) targets the definition's pipeline *endpoint* (the id
    output of the Pipelines component) without a version, so the endpoint's default version
    runs and a new published version needs no ADF change;
  - v2: ADF has no activity for batch endpoints (its Azure ML activity runs v1 assets only), so a
    Web activity invokes the batch endpoint's scoring URI as the factory identity (the body
    azure-ai-ml's `batch_endpoints.invoke` sends), then an Until loop follows the job through
    ARM's Jobs API until it ends, and a Fail activity fails the ADF run unless it completed —
    as the v1 activity waits for its run and fails with it. The endpoint's default deployment
    runs, so a new published version needs no ADF change either;
  the definition's parameters are the ADF pipeline's parameters (types and defaults carried
  over) and are passed on to Azure ML by name, so callers see the same ADF pipeline on v1 and v2
  and a cut-over only changes what its activities call;
- per `data_factory.triggers` entry, an ADF schedule trigger with the same recurrence Azure ML
  would use (`effective_recurrence`), started where the stack runs schedules and stopped where
  it pauses them. The trigger is the dynamic :class:`DataFactoryTrigger`, which manages the
  started/stopped state that azure-native's Trigger cannot (see :mod:`infra.provider.adf_trigger`).

ADF object names carry `<prefix>-<stack>-` so several stacks can share an existing factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, assert_never

import pulumi
from pulumi_azure_native import authorization
from pulumi_azure_native import datafactory as adf

from infra.components.compute import assignment_name, role_definition_id
from infra.definitions.loader import LoadedPipeline
from infra.definitions.model import ParameterType, Recurrence, Schedule
from infra.definitions.recurrence import effective_recurrence
from infra.provider.adf_trigger import DataFactoryTrigger, DataFactoryTriggerArgs
from infra.provider.azureml_v2.plan import BOOL_WORDS
from infra.settings import DataFactorySettings

# ADF parameter types (`adf.ParameterType` values) of the definition's parameter types. Plain
# strings: touching any attribute of `adf` at import loads the whole datafactory SDK module
# (≈ 1.4 s, 34 MB measured), which stacks without a factory must not pay.
PARAMETER_TYPES = {
    ParameterType.STRING: "String",
    ParameterType.INT: "Int",
    ParameterType.FLOAT: "Float",
    ParameterType.BOOL: "Bool",
}
# ADF schedule triggers need a start time; Azure ML schedules do not. A fixed instant in the past
# (not "now") keeps the input stable between runs: ADF does not backfill schedule triggers, it
# fires at the next occurrence after it is started.
DEFAULT_TRIGGER_START = "2025-01-01T00:00:00"
# Entra ID audiences the factory identity asks tokens for: batch endpoint invocation, and ARM
# (where the invoked job is read back).
AZUREML_AUDIENCE = "https://ml.azure.com"
ARM_ENDPOINT = "https://management.azure.com"
# ARM Jobs API version: the one azure-ai-ml 1.35.2's own job operations use (tests check it).
JOBS_API_VERSION = "2025-12-01"
# Job statuses after which a job never changes again: azure-ai-ml's own terminal set (tests check
# it). Anything else (queued, running, finalizing, ...) keeps the ADF run waiting.
JOB_TERMINAL_STATUSES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
# Seconds between two reads of a running v2 job; pipelines run minutes to hours.
JOB_POLL_SECONDS = 60
# The longest an ADF run waits for one v2 job (ADF's own ceiling for an activity: 7 days).
JOB_WAIT_TIMEOUT = "7.00:00:00"
# The ADF pipeline variable that carries the job status between the loop's activities.
STATUS_VARIABLE = "jobStatus"


@dataclass(frozen=True)
class PipelineEndpointTarget:
    """A v1 pipeline endpoint: `AzureMLExecutePipeline` starts its default version."""

    endpoint_id: pulumi.Input[str]
    """The PipelineEndpoint id (an output of the Pipelines component)."""


@dataclass(frozen=True)
class BatchEndpointTarget:
    """A v2 batch endpoint: invoked over REST, its default deployment runs."""

    scoring_uri: pulumi.Input[str]
    """The endpoint's invocation URL (`BatchEndpoint.properties.scoring_uri`)."""
    ready: pulumi.Resource
    """What must exist before ADF may invoke it: the switch that sets the default deployment
    (an endpoint without one refuses invocations)."""


FactoryTarget = PipelineEndpointTarget | BatchEndpointTarget


@dataclass(frozen=True)
class DataFactoryArgs:
    """The factory setting, the definitions it runs and where their endpoints live."""

    settings: DataFactorySettings
    definitions: tuple[LoadedPipeline, ...]
    """Definitions that get an ADF pipeline (already selected by `factory_pipelines`)."""
    targets: Mapping[str, FactoryTarget]
    """Pipeline name -> what its ADF pipeline runs (the stack's active API's endpoint)."""
    object_prefix: str
    """`<prefix>-<stack>`: prefix of every ADF object name (linked service, pipelines, triggers)."""
    location: str
    subscription_id: str
    resource_group_name: pulumi.Input[str]
    """The stack's resource group: the new factory's, and the workspace's."""
    workspace_name: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    tags: Mapping[str, str]
    schedules_enabled: bool
    """The stack's `schedulesEnabled`: ADF triggers start only where schedules run."""


class DataFactory(pulumi.ComponentResource):
    """A Data Factory (new or existing) that runs published pipelines through their endpoints."""

    factory_name: pulumi.Output[str]
    principal_id: pulumi.Output[str]
    """Object id of the factory's system-assigned identity (holder of the workspace role)."""
    pipeline_names: pulumi.Output[dict[str, str]]
    """Definition name -> ADF pipeline name."""
    pipelines: dict[str, adf.Pipeline]
    triggers: dict[str, DataFactoryTrigger]

    def __init__(
        self, name: str, args: DataFactoryArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        settings = args.settings
        if not settings.enabled:
            raise ValueError("DataFactory needs settings naming a factory (name or existing)")
        missing = sorted(d.spec.name for d in args.definitions if d.spec.name not in args.targets)
        if missing:
            raise ValueError(f"no endpoint for {', '.join(missing)}")
        super().__init__("azureml-pipelines:data_factory:DataFactory", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        factory_group, self.factory_name, self.principal_id = self._factory(name, args)
        role = settings.role
        grant = authorization.RoleAssignment(
            f"{name}-workspace-role",
            # Derived from scope, principal and role (the compute clusters' rule): a rerun after
            # lost state names the same one, a replaced factory's new identity gets a new one.
            role_assignment_name=pulumi.Output.all(args.workspace_id, self.principal_id).apply(
                lambda parts: assignment_name(parts[0], parts[1], role.role_id)
            ),
            principal_id=self.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(args.subscription_id, role.role_id),
            scope=args.workspace_id,
            description="Data Factory submits runs of published pipelines",
            opts=child,
        )
        runs_v1 = any(
            isinstance(args.targets[d.spec.name], PipelineEndpointTarget) for d in args.definitions
        )
        linked = (
            adf.LinkedService(
                f"{name}-azureml",
                factory_name=self.factory_name,
                resource_group_name=factory_group,
                linked_service_name=f"{args.object_prefix}-azureml",
                properties=adf.AzureMLServiceLinkedServiceArgs(
                    type="AzureMLService",
                    subscription_id=args.subscription_id,
                    resource_group_name=args.resource_group_name,
                    ml_workspace_name=args.workspace_name,
                    # The factory's own managed identity: no key or secret is stored in ADF.
                    authentication="MSI",
                    description="Azure ML workspace of the stack (factory managed identity)",
                ),
                # Runs fail until the identity holds its role: grant it first.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[grant]),
            )
            if runs_v1
            else None
        )
        self.pipelines = {}
        self.triggers = {}
        for loaded in args.definitions:
            spec = loaded.spec
            target = args.targets[spec.name]
            activities: list[Any]
            variables: dict[str, adf.VariableSpecificationArgs] | None = None
            if isinstance(target, PipelineEndpointTarget):
                assert linked is not None  # made whenever a definition runs on v1
                activities = [execute_activity(loaded, target.endpoint_id, linked.name)]
                after: list[pulumi.Resource] = [linked]
            elif isinstance(target, BatchEndpointTarget):
                activities = batch_activities(loaded, target.scoring_uri, args.workspace_id)
                variables = {
                    STATUS_VARIABLE: adf.VariableSpecificationArgs(type="String", default_value="")
                }
                # Invocations fail until the identity holds its role and the endpoint has a
                # default deployment.
                after = [grant, target.ready]
            else:
                assert_never(target)
            pipeline = adf.Pipeline(
                f"{name}-{spec.name}",
                factory_name=self.factory_name,
                resource_group_name=factory_group,
                pipeline_name=f"{args.object_prefix}-{spec.name}",
                description=spec.description or f"Runs the Azure ML pipeline {spec.name}",
                parameters=pipeline_parameters(loaded),
                variables=variables,
                activities=activities,
                annotations=["azureml-pipelines"],
                opts=pulumi.ResourceOptions(parent=self, depends_on=after),
            )
            self.pipelines[spec.name] = pipeline
            for trigger in spec.data_factory.triggers:
                key = f"{spec.name}-{trigger.name}"
                self.triggers[key] = DataFactoryTrigger(
                    f"{name}-{key}",
                    DataFactoryTriggerArgs(
                        subscription_id=args.subscription_id,
                        resource_group=factory_group,
                        factory_name=self.factory_name,
                        name=f"{args.object_prefix}-{key}",
                        properties=trigger_properties(trigger, pipeline.name),
                        # Runs where the stack runs schedules and the trigger itself is on;
                        # elsewhere it exists, stopped (ADF's own default state).
                        started=args.schedules_enabled and trigger.enabled,
                        owner=f"azureml-pipelines:{args.object_prefix}",
                    ),
                    child,
                )
        self.pipeline_names = pulumi.Output.all(
            **{key: p.name for key, p in self.pipelines.items()}
        ).apply(dict)
        self.register_outputs(
            {
                "factoryName": self.factory_name,
                "principalId": self.principal_id,
                "pipelineNames": self.pipeline_names,
            }
        )

    def _factory(
        self, name: str, args: DataFactoryArgs
    ) -> tuple[pulumi.Input[str], pulumi.Output[str], pulumi.Output[str]]:
        """(resource group, name, identity principal id) of the factory, created or looked up."""
        settings = args.settings
        if settings.existing is not None:
            group: pulumi.Input[str] = settings.resource_group_name or args.resource_group_name
            found = adf.get_factory_output(
                factory_name=settings.existing,
                resource_group_name=group,
                opts=pulumi.InvokeOutputOptions(parent=self),
            )
            return group, found.name, found.identity.apply(_principal_of(settings.existing))
        factory = adf.Factory(
            f"{name}-factory",
            factory_name=settings.name,
            resource_group_name=args.resource_group_name,
            location=args.location,
            identity=adf.FactoryIdentityArgs(type=adf.FactoryIdentityType.SYSTEM_ASSIGNED),
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self),
        )
        return (
            args.resource_group_name,
            factory.name,
            factory.identity.apply(_principal_of(settings.name or "")),
        )


def _principal_of(factory: str) -> Any:
    def principal(identity: Any) -> str:
        principal_id = getattr(identity, "principal_id", None) if identity else None
        if not principal_id:
            # An existing factory without a system-assigned identity cannot authenticate as MSI.
            raise ValueError(
                f"Data Factory {factory!r} has no system-assigned managed identity; turn it on "
                "(Azure portal: the factory's Managed identities page) and run again"
            )
        return str(principal_id)

    return principal


def pipeline_parameters(loaded: LoadedPipeline) -> dict[str, adf.ParameterSpecificationArgs]:
    """The definition's parameters as ADF pipeline parameters (type and default carried over)."""
    return {
        key: adf.ParameterSpecificationArgs(
            type=PARAMETER_TYPES[param.type], default_value=param.default
        )
        for key, param in loaded.spec.parameters.items()
    }


def execute_activity(
    loaded: LoadedPipeline, endpoint_id: pulumi.Input[str], linked_service: pulumi.Input[str]
) -> adf.AzureMLExecutePipelineActivityArgs:
    """The activity that runs the endpoint's default version with the ADF pipeline's parameters."""
    spec = loaded.spec
    return adf.AzureMLExecutePipelineActivityArgs(
        name=f"run-{spec.name}",
        type="AzureMLExecutePipeline",
        description=f"Submit a run of the Azure ML pipeline endpoint {spec.name}",
        linked_service_name=adf.LinkedServiceReferenceArgs(
            reference_name=linked_service, type="LinkedServiceReference"
        ),
        # The endpoint, not one published pipeline, and no `version`: Azure ML runs the
        # endpoint's default version, which `pulumi up` moves when the definition changes.
        ml_pipeline_endpoint_id=endpoint_id,
        experiment_name=spec.experiment,
        # Each Azure ML pipeline parameter takes the ADF pipeline parameter of the same name.
        ml_pipeline_parameters={
            key: {"value": f"@pipeline().parameters.{key}", "type": "Expression"}
            for key in spec.parameters
        },
    )


def invocation_value(kind: ParameterType, key: str) -> str:
    """The ADF expression giving parameter `key` as a v2 job input value: the typed value, except
    a Bool, which v2 pipelines take as the text v1 and the local runner pass (`True`/`False`)."""
    if kind is ParameterType.BOOL:
        return f"@if(pipeline().parameters.{key}, '{BOOL_WORDS[0]}', '{BOOL_WORDS[1]}')"
    return f"@pipeline().parameters.{key}"


def invocation_body(loaded: LoadedPipeline) -> dict[str, Any]:
    """The batch-endpoint invocation (REST shape) with the ADF pipeline's parameters as literal
    inputs: what `MLClient.batch_endpoints.invoke(inputs=..., experiment_name=...)` sends."""
    spec = loaded.spec
    job: dict[str, Any] = {}
    if spec.parameters:
        job["inputData"] = {
            key: {"jobInputType": "Literal", "value": invocation_value(param.type, key)}
            for key, param in spec.parameters.items()
        }
    job["properties"] = {"experimentName": spec.experiment}
    return {"properties": job}


def _after(activity: str) -> list[adf.ActivityDependencyArgs]:
    """Run once `activity` (same container) has succeeded."""
    return [adf.ActivityDependencyArgs(activity=activity, dependency_conditions=["Succeeded"])]


def batch_activities(
    loaded: LoadedPipeline, scoring_uri: pulumi.Input[str], workspace_id: pulumi.Input[str]
) -> list[Any]:
    """Invoke the batch endpoint, wait for the job it started to end, fail unless it completed."""
    spec = loaded.spec
    job = "activity('invoke').output.name"
    job_url = pulumi.Output.concat(
        ARM_ENDPOINT, workspace_id, "/jobs/@{", job, "}?api-version=", JOBS_API_VERSION
    )
    done = ", ".join(f"'{status}'" for status in JOB_TERMINAL_STATUSES)
    return [
        adf.WebActivityArgs(
            name="invoke",
            type="WebActivity",
            description=f"Invoke the batch endpoint of {spec.name} (its default deployment runs)",
            method="POST",
            url=scoring_uri,
            headers={"Content-Type": "application/json"},
            body=invocation_body(loaded),
            authentication=adf.WebActivityAuthenticationArgs(type="MSI", resource=AZUREML_AUDIENCE),
            # No retry: a lost response would start a second job (ADF's rerun is the user's).
            policy=adf.ActivityPolicyArgs(retry=0, timeout="0.00:10:00"),
        ),
        adf.UntilActivityArgs(
            name="wait-for-job",
            type="Until",
            description="Read the job through ARM until it reaches a final status",
            depends_on=_after("invoke"),
            expression=adf.ExpressionArgs(
                type="Expression",
                value=f"@contains(createArray({done}), variables('{STATUS_VARIABLE}'))",
            ),
            timeout=JOB_WAIT_TIMEOUT,
            activities=[
                adf.WaitActivityArgs(
                    name="poll-interval",
                    type="Wait",
                    wait_time_in_seconds=JOB_POLL_SECONDS,
                ),
                adf.WebActivityArgs(
                    name="read-job",
                    type="WebActivity",
                    method="GET",
                    url=job_url,
                    authentication=adf.WebActivityAuthenticationArgs(
                        type="MSI", resource=f"{ARM_ENDPOINT}/"
                    ),
                    depends_on=_after("poll-interval"),
                    # Reads are safe to retry: a transient ARM error must not fail the ADF run.
                    policy=adf.ActivityPolicyArgs(retry=3, retry_interval_in_seconds=30),
                ),
                adf.SetVariableActivityArgs(
                    name="record-status",
                    type="SetVariable",
                    variable_name=STATUS_VARIABLE,
                    value="@activity('read-job').output.properties.status",
                    depends_on=_after("read-job"),
                ),
            ],
        ),
        adf.IfConditionActivityArgs(
            name="check-outcome",
            type="IfCondition",
            description="Fail the ADF run unless the Azure ML job completed",
            depends_on=_after("wait-for-job"),
            expression=adf.ExpressionArgs(
                type="Expression", value=f"@equals(variables('{STATUS_VARIABLE}'), 'Completed')"
            ),
            if_false_activities=[
                adf.FailActivityArgs(
                    name="job-did-not-complete",
                    type="Fail",
                    message=(
                        f"@concat('Azure ML job ', {job}, ' of {spec.name} ended ', "
                        f"variables('{STATUS_VARIABLE}'))"
                    ),
                    error_code="AzureMLJobNotCompleted",
                )
            ],
        ),
    ]


def trigger_recurrence(schedule: Schedule) -> dict[str, Any]:
    """ADF's recurrence (REST shape) of a schedule: the one Azure ML would run (cron translated)."""
    rec: Recurrence = effective_recurrence(schedule)
    time_zone = schedule.effective_time_zone
    start = rec.start_time or DEFAULT_TRIGGER_START
    # ADF wants UTC start times with 'Z' and other zones' start times without an offset.
    if time_zone == "UTC" and not start.endswith("Z"):
        start += "Z"
    recurrence: dict[str, Any] = {
        "frequency": rec.frequency.value,
        "interval": rec.interval,
        "startTime": start,
        "timeZone": time_zone,
    }
    plan = {
        "hours": rec.hours,
        "minutes": rec.minutes,
        "weekDays": [day.value for day in rec.week_days] if rec.week_days else None,
    }
    if any(value is not None for value in plan.values()):
        recurrence["schedule"] = {k: v for k, v in plan.items() if v is not None}
    return recurrence


def trigger_properties(schedule: Schedule, pipeline_name: pulumi.Input[str]) -> dict[str, Any]:
    """An ADF schedule trigger (REST shape) running `pipeline_name` with the schedule's values."""
    target: dict[str, Any] = {
        "pipelineReference": {"referenceName": pipeline_name, "type": "PipelineReference"}
    }
    if schedule.parameters:
        target["parameters"] = dict(schedule.parameters)
    properties: dict[str, Any] = {
        "type": "ScheduleTrigger",
        "pipelines": [target],
        "typeProperties": {"recurrence": trigger_recurrence(schedule)},
    }
    if schedule.description:
        properties["description"] = schedule.description
    return properties
