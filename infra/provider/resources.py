"""Thin Pulumi resources over the dynamic providers (type tokens `dynamic/azureml:...`).

Inputs are the readable props of :mod:`infra.provider.props` (each may be a `pulumi.Input`);
outputs are declared as attributes so the program can use `endpoint.rest_url` and friends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pulumi
from pulumi.dynamic import Resource

from infra.provider.provider import PipelineEndpointProvider, PipelineScheduleProvider

# Output properties are computed by the provider; declaring them as None tells the engine to
# expect them (and makes them readable as attributes).
_ENDPOINT_OUTPUTS = (
    "endpoint_id",
    "rest_url",
    "status",
    "default_version",
    "published_pipeline_id",
    "default_content_hash",
    "enabled_versions",
)
_SCHEDULE_OUTPUTS = ("schedule_id", "status")


@dataclass(frozen=True)
class WorkspaceArgs:
    """Workspace coordinates (outputs of the workspace component)."""

    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace_name: pulumi.Input[str]

    def props(self) -> dict[str, Any]:
        """As resource inputs."""
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace_name,
        }


@dataclass(frozen=True)
class PipelineEndpointArgs:
    """Inputs of :class:`PipelineEndpoint` (see :class:`infra.provider.props.EndpointInputs`)."""

    workspace: WorkspaceArgs
    name: str
    experiment: str
    content_hash: pulumi.Input[str]
    code_root: str
    steps: dict[str, Any]
    images: pulumi.Input[dict[str, pulumi.Input[str]]]
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    registry_identities: pulumi.Input[dict[str, Any]] = field(default_factory=dict)
    """Cluster name -> {resource_id, client_id} of the identity that pulls the image."""
    version_retention: int = 2
    adopt_existing: bool = False


class PipelineEndpoint(Resource, module="azureml", name="PipelineEndpoint"):
    """A published pipeline behind a stable REST endpoint; id = the endpoint id."""

    endpoint_id: pulumi.Output[str]
    rest_url: pulumi.Output[str]
    status: pulumi.Output[str]
    default_version: pulumi.Output[str]
    published_pipeline_id: pulumi.Output[str]
    content_hash: pulumi.Output[str]
    default_content_hash: pulumi.Output[str]
    enabled_versions: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: PipelineEndpointArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            **args.workspace.props(),
            "name": args.name,
            "description": args.description,
            "experiment": args.experiment,
            "content_hash": args.content_hash,
            "code_root": args.code_root,
            "steps": args.steps,
            "parameters": args.parameters,
            "images": args.images,
            "registry_identities": args.registry_identities,
            "version_retention": args.version_retention,
            "adopt_existing": args.adopt_existing,
            **dict.fromkeys(_ENDPOINT_OUTPUTS),
        }
        super().__init__(PipelineEndpointProvider(), name, props, opts)


@dataclass(frozen=True)
class PipelineScheduleArgs:
    """Inputs of :class:`PipelineSchedule` (see :class:`infra.provider.props.ScheduleInputs`)."""

    workspace: WorkspaceArgs
    name: str
    endpoint_id: pulumi.Input[str]
    experiment: str
    recurrence: dict[str, Any]
    recurrence_text: str
    description: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    enabled: bool = True


class PipelineSchedule(Resource, module="azureml", name="PipelineSchedule"):
    """A recurring schedule on a pipeline endpoint; id = the schedule id."""

    schedule_id: pulumi.Output[str]
    status: pulumi.Output[str]
    enabled: pulumi.Output[bool]

    def __init__(
        self, name: str, args: PipelineScheduleArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            **args.workspace.props(),
            "name": args.name,
            "endpoint_id": args.endpoint_id,
            "experiment": args.experiment,
            "description": args.description,
            "recurrence": args.recurrence,
            "recurrence_text": args.recurrence_text,
            "parameters": args.parameters,
            "enabled": args.enabled,
            **dict.fromkeys(_SCHEDULE_OUTPUTS),
        }
        super().__init__(PipelineScheduleProvider(), name, props, opts)
