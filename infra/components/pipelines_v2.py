"""PipelinesV2 component: every pipeline definition published the Azure ML v2 way.

Per image: an azure-native `EnvironmentVersion` running the pushed image pinned by digest (no
conda file, no build, no registry credentials: the cluster's identity, which holds AcrPull, pulls
it). Per definition:

- `PipelineComponentV2` (dynamic, azure-ai-ml): the step components (code uploaded) and the
  pipeline component, versions named by content hash;
- an azure-native `BatchEndpoint` with a stable, regionally unique name (Entra ID tokens only);
- `BatchDeploymentV2` (dynamic, azure-ai-ml) per published version (named by the program-time
  content key, kept on Azure when a newer version replaces it, and adopted again by a revert:
  azure-native's `BatchDeployment` refuses a resource that already exists), deploying the
  pipeline component;
- `DefaultDeploymentV2` (dynamic): the endpoint's default deployment, i.e. the promotion switch,
  switched once the new deployment exists, pruning this stack's deployments beyond
  `versionRetention`;
- an azure-native `Schedule` per `schedules:` entry: trigger + CreateJob of the current pipeline
  component with the entry's parameter values, paused where schedules do not run.

Nothing here imports azure-ai-ml: names, versions and triggers come from the pure plan module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi_azure_native import machinelearningservices as ml

from infra.components.pipelines import code_root_of, schedule_name
from infra.definitions.errors import SpecErrors
from infra.definitions.hashing import StepDigest, TreeDigest, step_digests
from infra.definitions.loader import LoadedPipeline
from infra.provider.azureml_v2.deployment import BatchDeploymentV2, BatchDeploymentV2Args
from infra.provider.azureml_v2.dynamic import (
    DefaultDeploymentV2,
    DefaultDeploymentV2Args,
    PipelineComponentV2,
    PipelineComponentV2Args,
    V2Workspace,
)
from infra.provider.azureml_v2.plan import (
    PipelinePlan,
    deployment_name,
    endpoint_name,
    plan_pipeline,
    port_value,
    trigger_spec,
    v2_problems,
)

ENVIRONMENT_PREFIX = "amlpipe-"


@dataclass(frozen=True)
class PipelinesV2Args:
    """Definitions plus where and with what they run (v2)."""

    definitions: tuple[LoadedPipeline, ...]
    project_root: Path
    location: str
    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace_name: pulumi.Input[str]
    image_refs: Mapping[str, pulumi.Input[str]]
    """Image key -> pushed reference with digest."""
    image_tags: Mapping[str, str]
    """Image key -> content tag (known when the program starts): names the deployments."""
    name_salt: str
    """What makes endpoint names unique in the region (prefix, stack, subscription)."""
    owner: str
    """This stack's mark on the deployments it creates (only those are ever pruned)."""
    schedules_enabled: bool
    """The stack switch (false on dev) and the cut-over switch combined by the program."""
    version_retention: int
    """Deployments kept per endpoint (`versionRetention`; its default lives in Pulumi.yaml)."""
    tags: Mapping[str, str]
    depends_on: tuple[pulumi.Resource, ...] = field(default_factory=tuple)
    """Resources the pipelines need beyond their inputs (the compute clusters)."""
    schedules_after: Mapping[str, pulumi.Resource] = field(default_factory=dict)
    """Schedule name -> the resource that schedule is created or changed after: during a
    cut-over, the other API's schedule of the same name, so each pause follows the creation of
    what replaces it (and waits for nothing else: the overlap stays that pair's own writes)."""


@dataclass(frozen=True)
class EndpointSettings:
    """What the program sends a batch endpoint besides its name (Entra ID auth is fixed)."""

    location: str
    description: str
    tags: tuple[tuple[str, str], ...]

    def revision(self) -> str:
        """A digest that changes whenever these do: any update of the endpoint."""
        text = json.dumps([self.location, self.description, self.tags, "AADToken"])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def environment_version(ref: str) -> str:
    """Version of the environment for an image reference: a hash of it (digest included)."""
    return hashlib.sha256(ref.encode()).hexdigest()[:16]


def steps_summary(plan: PipelinePlan) -> dict[str, dict[str, str]]:
    """What `preview --diff` shows per step: version, command, compute and image."""
    return {
        s.node: {
            "version": s.version,
            "command": s.command,
            "compute": s.compute,
            "image": s.image,
        }
        for s in plan.steps
    }


class PipelinesV2(pulumi.ComponentResource):
    """Every definition as a pipeline component behind a batch endpoint, with v2 schedules."""

    endpoints: dict[str, ml.BatchEndpoint]
    deployments: dict[str, BatchDeploymentV2]
    components: dict[str, PipelineComponentV2]
    defaults: dict[str, DefaultDeploymentV2]
    schedules: dict[str, ml.Schedule]
    environments: dict[str, ml.EnvironmentVersion]
    rest_urls: pulumi.Output[dict[str, str]]

    def __init__(
        self, name: str, args: PipelinesV2Args, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        problems = v2_problems(args.definitions)
        if problems:
            raise SpecErrors(problems)  # before any resource is registered
        super().__init__("azureml-pipelines:pipelines:PipelinesV2", name, None, opts)
        self._args = args
        self._name = name
        self._workspace = V2Workspace(
            args.subscription_id, args.resource_group, args.workspace_name
        )
        child = pulumi.ResourceOptions(parent=self, depends_on=list(args.depends_on))
        used = sorted({d.spec.step_image(s) for d in args.definitions for s in d.spec.steps})
        self.environments = {key: self._environment(key, child) for key in used}
        self.endpoints, self.deployments, self.components = {}, {}, {}
        self.defaults, self.schedules = {}, {}
        # Code-tree digests by folder, shared by every pipeline: each tree is hashed once.
        trees: dict[Path, TreeDigest] = {}
        for loaded in args.definitions:
            self._pipeline(loaded, step_digests(loaded, trees), child)
        self.rest_urls = pulumi.Output.all(
            **{k: e.properties.scoring_uri for k, e in self.endpoints.items()}
        ).apply(dict)
        self.register_outputs({"restUrls": self.rest_urls})

    def _environment(self, key: str, opts: pulumi.ResourceOptions) -> ml.EnvironmentVersion:
        ref = pulumi.Output.from_input(self._args.image_refs[key])
        return ml.EnvironmentVersion(
            f"{self._name}-env-{key}",
            name=f"{ENVIRONMENT_PREFIX}{key}",
            # Immutable versions, one per pushed image: a new digest is a new version. Older ones
            # stay (retain_on_delete): retained deployments still run in them.
            version=ref.apply(environment_version),
            resource_group_name=self._args.resource_group,
            workspace_name=self._args.workspace_name,
            properties=ml.EnvironmentVersionPropertiesArgs(
                image=ref,
                os_type=ml.OperatingSystemType.LINUX,
                description=f"Image '{key}' of this project, pinned by digest.",
                tags=dict(self._args.tags),
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(retain_on_delete=True)),
        )

    def _pipeline(
        self,
        loaded: LoadedPipeline,
        digests: Mapping[str, StepDigest],
        opts: pulumi.ResourceOptions,
    ) -> None:
        args, spec = self._args, loaded.spec
        used = sorted({spec.step_image(s) for s in spec.steps})
        # Program-time content key (image tags, not digests): names the deployment, because a
        # resource's name must be known before any output is.
        release = plan_pipeline(loaded, {k: f"{k}:{args.image_tags[k]}" for k in used}, digests)
        deployment = deployment_name(release.version)
        refs = pulumi.Output.all(**{k: args.image_refs[k] for k in used})
        # Pure computation on the pushed references (no resource is created in apply).
        plan = refs.apply(lambda r: plan_pipeline(loaded, r, digests))
        prefix = f"{self._name}-{spec.name}"
        component = PipelineComponentV2(
            f"{prefix}-component",
            PipelineComponentV2Args(
                workspace=self._workspace,
                pipeline=spec.name,
                code_root=code_root_of(loaded, args.project_root),
                component=release.component,
                version=plan.apply(lambda p: p.version),
                images=refs.apply(dict),
                environments=pulumi.Output.all(**{k: self.environments[k].id for k in used}).apply(
                    dict
                ),
                steps=plan.apply(steps_summary),
                owner=args.owner,
            ),
            opts,
        )
        endpoint_settings = EndpointSettings(
            location=args.location,
            description=spec.description,
            tags=tuple(sorted(args.tags.items())),
        )
        endpoint = ml.BatchEndpoint(
            f"{prefix}-endpoint",
            endpoint_name=endpoint_name(spec.name, args.name_salt),
            location=endpoint_settings.location,
            resource_group_name=args.resource_group,
            workspace_name=args.workspace_name,
            properties=ml.BatchEndpointPropertiesArgs(
                auth_mode=ml.EndpointAuthMode.AAD_TOKEN, description=endpoint_settings.description
            ),
            tags=dict(endpoint_settings.tags),
            # The default deployment is DefaultDeploymentV2's to set (it must exist first).
            opts=pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(ignore_changes=["properties.defaults"])
            ),
        )
        computes = sorted({spec.step_compute(s) for s in spec.steps})
        deployed = BatchDeploymentV2(
            f"{prefix}-{deployment}",
            BatchDeploymentV2Args(
                workspace=self._workspace,
                endpoint=endpoint.name,
                deployment=deployment,
                component_id=component.component_id,
                compute=computes[0],
                owner=args.owner,
                description=f"{spec.name} {release.version}",
                tags={**args.tags, "amlpipe-version": release.version},
            ),
            # A newer version is a new deployment; this one stays on Azure for rollback until
            # DefaultDeploymentV2 prunes it beyond the retention, and is adopted again by a
            # revert (azure-native's BatchDeployment would refuse it as already existing).
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[endpoint])),
        )
        default = DefaultDeploymentV2(
            f"{prefix}-default",
            DefaultDeploymentV2Args(
                workspace=self._workspace,
                endpoint=endpoint.name,
                deployment=deployment,
                version_retention=args.version_retention,
                owner=args.owner,
                endpoint_revision=endpoint_settings.revision(),
            ),
            # After the deployment, and after any update of the endpoint (whose PUT carries no
            # `defaults`): a changed endpoint_revision re-asserts the default in the same up.
            pulumi.ResourceOptions.merge(
                opts, pulumi.ResourceOptions(depends_on=[deployed, endpoint])
            ),
        )
        self.components[spec.name], self.endpoints[spec.name] = component, endpoint
        self.deployments[spec.name], self.defaults[spec.name] = deployed, default
        for schedule in spec.schedules:
            key = schedule_name(spec, schedule)
            self.schedules[key] = self._schedule(
                key, loaded, schedule, component, [default, *self._replaced(key)], opts
            )

    def _replaced(self, key: str) -> list[pulumi.Resource]:
        """The other API's schedule `key` replaces during a cut-over (none otherwise)."""
        replaced = self._args.schedules_after.get(key)
        return [replaced] if replaced is not None else []

    def _schedule(
        self,
        key: str,
        loaded: LoadedPipeline,
        schedule: Any,
        component: PipelineComponentV2,
        after: Sequence[pulumi.Resource],
        opts: pulumi.ResourceOptions,
    ) -> ml.Schedule:
        spec, args = loaded.spec, self._args
        trigger = trigger_spec(schedule)
        trigger_args: ml.CronTriggerArgs | ml.RecurrenceTriggerArgs
        if trigger.kind == "Cron":
            trigger_args = ml.CronTriggerArgs(
                trigger_type="Cron",
                expression=trigger.expression,
                time_zone=trigger.time_zone,
                start_time=trigger.start_time,
            )
        else:
            pattern = None
            if trigger.hours is not None and trigger.minutes is not None:
                pattern = ml.RecurrenceScheduleArgs(
                    hours=list(trigger.hours),
                    minutes=list(trigger.minutes),
                    week_days=list(trigger.week_days) if trigger.week_days else None,
                )
            trigger_args = ml.RecurrenceTriggerArgs(
                trigger_type="Recurrence",
                frequency=trigger.frequency,
                interval=trigger.interval,
                schedule=pattern,
                time_zone=trigger.time_zone,
                start_time=trigger.start_time,
            )
        inputs = {
            name: ml.LiteralJobInputArgs(
                job_input_type="literal",
                value=str(port_value(spec.parameters[name].type, value)),
            )
            for name, value in sorted(schedule.parameters.items())
        }
        return ml.Schedule(
            f"{self._name}-{key}",
            name=key,
            resource_group_name=args.resource_group,
            workspace_name=args.workspace_name,
            properties=ml.SchedulePropertiesArgs(
                action=ml.JobScheduleActionArgs(
                    action_type="CreateJob",
                    job_definition=ml.PipelineJobArgs(
                        job_type="Pipeline",
                        component_id=component.component_id,
                        experiment_name=spec.experiment,
                        display_name=key,
                        inputs=inputs or None,
                    ),
                ),
                trigger=trigger_args,
                description=schedule.description or None,
                display_name=key,
                is_enabled=args.schedules_enabled and schedule.enabled,
                tags=dict(args.tags),
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=list(after))),
        )
