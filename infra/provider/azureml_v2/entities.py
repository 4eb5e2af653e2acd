"""A :class:`~infra.provider.azureml_v2.plan.PipelinePlan` as azure-ai-ml's own entities, and their
REST bodies through azure-ai-ml's own serialization (``_to_rest_object().as_dict()``): no
hand-written copy of the service's shapes.

azure-ai-ml is imported inside the functions (about 1.5 s and much memory): the Pulumi program
imports :mod:`infra.provider` and must never pay for it.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from infra.definitions.model import PipelineSpec, Schedule
from infra.provider.azureml_v2.plan import (
    PORT_TYPES,
    PipelinePlan,
    Port,
    StepPlan,
    port_value,
    trigger_spec,
)

API_VERSION_NOTE = "azure-ai-ml 1.35.2"


def _ml(module: str = "azure.ai.ml") -> Any:
    """Import an azure-ai-ml module when first needed (typed Any at this boundary)."""
    return importlib.import_module(module)


def _input(port: Port) -> Any:
    Input = _ml().Input
    kwargs: dict[str, Any] = {"type": port.type}
    if port.default is not None:
        kwargs["default"] = port.default
    if port.enum:
        kwargs["enum"] = list(port.enum)
    if port.description:
        kwargs["description"] = port.description
    if port.optional:
        kwargs["optional"] = True
    return Input(**kwargs)


def environment_for(image_ref: str, asset_id: str | None = None) -> Any:
    """The environment a step runs in: a registered environment version (``azureml:name:version``
    or its ARM id) when given, else the image itself with no conda file, no build."""
    if asset_id:
        return asset_id
    return _ml("azure.ai.ml.entities").Environment(image=image_ref)


OWNER_TAG = "amlpipe-owner"
"""Tag on every component version and batch deployment this project creates: its value names
the stack (`project/stack`). Only objects carrying this stack's value are ever adopted, archived
or pruned."""


def command_component(
    step: StepPlan,
    image_ref: str,
    environment_id: str | None = None,
    pipeline: str = "",
    owner: str | None = None,
) -> Any:
    """The command component of one step, named and versioned by content (stamped with the
    owning stack when `owner` is given)."""
    CommandComponent = _ml("azure.ai.ml.entities").CommandComponent
    Output = _ml().Output

    return CommandComponent(
        name=step.component,
        version=step.version,
        display_name=f"{pipeline}/{step.node}" if pipeline else step.node,
        description=step.description or None,
        command=step.command,
        code=str(step.code),
        environment=environment_for(image_ref, environment_id),
        inputs={port.name: _input(port) for port in step.inputs},
        outputs={name: Output(type="uri_folder") for name in step.outputs},
        is_deterministic=step.deterministic,
        tags={"amlpipe-kind": step.kind, **_owned(owner)},
    )


def _owned(owner: str | None) -> dict[str, str]:
    return {OWNER_TAG: owner} if owner else {}


def _node(step: StepPlan, component: Any) -> Any:
    Command = _ml("azure.ai.ml.entities._builders").Command

    return Command(
        component=component,
        inputs=dict(step.bindings),
        compute=step.compute,
        environment_variables=dict(step.environment_variables) or None,
    )


def pipeline_component(
    plan: PipelinePlan,
    environments: Mapping[str, str] | None = None,
    component_refs: Mapping[str, str] | None = None,
    owner: str | None = None,
) -> Any:
    """The pipeline component of a plan.

    `environments` maps image keys to registered environment ids (else the image is used
    inline). With `component_refs` (node -> ``azureml:name:version`` or ARM id of the registered
    step component) the nodes reference the registered components, which is the shape the service
    stores; without, they embed the step components (for validation, and for azure-ai-ml's
    `components.create_or_update`, which registers embedded named components itself).
    """
    PipelineComponent = _ml("azure.ai.ml.entities").PipelineComponent

    jobs: dict[str, Any] = {}
    for step in plan.steps:
        component: Any
        if component_refs is not None:
            component = component_refs[step.node]
        else:
            component = command_component(
                step,
                plan.images[step.image],
                (environments or {}).get(step.image),
                plan.name,
                owner,
            )
        jobs[step.node] = _node(step, component)
    return PipelineComponent(
        name=plan.component,
        version=plan.version,
        display_name=plan.name,
        description=plan.description or None,
        inputs={port.name: _input(port) for port in plan.inputs},
        jobs=jobs,
        tags={**plan.tags, "amlpipe-pipeline": plan.name, **_owned(owner)},
    )


def component_ref(name: str, version: str) -> str:
    """The short reference azure-ai-ml resolves in the workspace (``azureml:name:version``)."""
    return f"azureml:{name}:{version}"


def rest_body(entity: Any, **kwargs: Any) -> dict[str, Any]:
    """The REST body azure-ai-ml would send for `entity` (its own serialization)."""
    return dict(entity._to_rest_object(**kwargs).as_dict())


def validation_errors(entity: Any) -> list[str]:
    """azure-ai-ml's own client-side validation of an entity (empty when it passes)."""
    result = entity._validate()
    if result.passed:
        return []
    return [f"{path}: {message}" for path, message in result.error_messages.items()]


# -- schedules ------------------------------------------------------------------------------------


def trigger_for(schedule: Schedule, start_time: str | None = None) -> Any:
    """The azure-ai-ml trigger of a schedule, from the same :func:`trigger_spec` the program's
    azure-native Schedule is built from (`start_time` applies when the definition gives none)."""
    entities = _ml("azure.ai.ml.entities")
    spec = trigger_spec(schedule)
    start = spec.start_time or start_time
    if spec.kind == "Cron":
        return entities.CronTrigger(
            expression=spec.expression, time_zone=spec.time_zone, start_time=start
        )
    pattern = None
    if spec.hours is not None and spec.minutes is not None:
        pattern = entities.RecurrencePattern(
            hours=list(spec.hours),
            minutes=list(spec.minutes),
            week_days=list(spec.week_days) if spec.week_days else None,
        )
    return entities.RecurrenceTrigger(
        frequency=spec.frequency,
        interval=spec.interval,
        schedule=pattern,
        time_zone=spec.time_zone,
        start_time=start,
    )


def pipeline_job(
    spec: PipelineSpec, component: str, values: Mapping[str, Any], default_compute: str
) -> Any:
    """A pipeline job of a registered pipeline component with some input values."""
    PipelineJob = _ml("azure.ai.ml.entities").PipelineJob

    inputs = {name: port_value(spec.parameters[name].type, value) for name, value in values.items()}
    return PipelineJob(
        component=component,
        inputs=inputs,
        experiment_name=spec.experiment,
        settings={"default_compute": default_compute},
    )


def job_schedule(
    spec: PipelineSpec,
    schedule: Schedule,
    name: str,
    component: str,
    enabled: bool,
    start_time: str | None = None,
) -> Any:
    """The JobSchedule of one `schedules:` entry: trigger + CreateJob of the pipeline component
    with the entry's parameter values; paused (`is_enabled=False`) when not enabled."""
    JobSchedule = _ml("azure.ai.ml.entities").JobSchedule

    return JobSchedule(
        name=name,
        trigger=trigger_for(schedule, start_time),
        create_job=pipeline_job(spec, component, schedule.parameters, spec.compute),
        description=schedule.description or None,
        is_enabled=enabled,
    )


def batch_deployment(plan: PipelinePlan, endpoint: str, deployment: str, component: str) -> Any:
    """The batch deployment of one published version (a pipeline component deployment)."""
    PipelineComponentBatchDeployment = _ml("azure.ai.ml.entities").PipelineComponentBatchDeployment

    computes = sorted({s.compute for s in plan.steps})
    return PipelineComponentBatchDeployment(
        name=deployment,
        endpoint_name=endpoint,
        component=component,
        settings={"default_compute": computes[0], "continue_on_step_failure": "False"},
        description=plan.description or None,
        tags={"amlpipe-version": plan.version},
    )


def component_deployment(
    endpoint: str,
    name: str,
    component_id: str,
    compute: str,
    tags: Mapping[str, str],
    description: str = "",
) -> Any:
    """The batch deployment of a registered pipeline component (by ARM id)."""
    PipelineComponentBatchDeployment = _ml("azure.ai.ml.entities").PipelineComponentBatchDeployment

    return PipelineComponentBatchDeployment(
        name=name,
        endpoint_name=endpoint,
        component=component_id,
        settings={"default_compute": compute, "continue_on_step_failure": "False"},
        description=description or None,
        tags=dict(tags),
    )


def batch_endpoint(name: str, description: str, default_deployment: str | None = None) -> Any:
    """A batch endpoint (Azure AD token auth, the only mode batch endpoints have)."""
    BatchEndpoint = _ml("azure.ai.ml.entities").BatchEndpoint

    return BatchEndpoint(
        name=name, description=description or None, default_deployment_name=default_deployment
    )


def batch_endpoint_body(endpoint: Any, location: str) -> dict[str, Any]:
    """The REST body of a batch endpoint (azure-ai-ml's own serialization)."""
    return dict(endpoint._to_rest_batch_endpoint(location).as_dict())


def iso_start(moment: datetime) -> str:
    """A naive ISO date-time, as v2 triggers take it (the zone is the trigger's time_zone)."""
    return moment.replace(tzinfo=None, microsecond=0).isoformat()


def invoke_body(spec: PipelineSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """The body a REST caller POSTs to a v2 batch endpoint to run the pipeline with these
    parameter values: exactly what azure-ai-ml's `batch_endpoints.invoke` builds (its own
    schema), so the README's example cannot drift from the SDK."""
    Input = _ml().Input
    schema = _ml("azure.ai.ml._schema._deployment.batch.batch_job").BatchJobSchema
    common = _ml("azure.ai.ml.constants._common")
    fields = _ml("azure.ai.ml.constants._endpoint").EndpointYamlFields

    inputs = {
        name: Input(
            type=PORT_TYPES[spec.parameters[name].type],
            default=port_value(spec.parameters[name].type, value),
        )
        for name, value in values.items()
    }
    context = {
        common.BASE_PATH_CONTEXT_KEY: ".",
        common.PARAMS_OVERRIDE_KEY: [{fields.BATCH_JOB_INPUT_DATA: inputs}],
    }
    return {"properties": dict(schema(context=context).load(data={}))}
