"""Azure ML v1 adapter of the backend port (azureml-core / azureml-pipeline-core / -steps).

azureml is imported inside functions only: importing it costs about 0.6 s and much memory, and the
Pulumi program (which imports the resources, hence this package) must never pay for it.

Compilation of a validated spec (:func:`compile_steps`) needs no workspace, so tests check the real
step, environment and recurrence objects it builds. Credentials come from the environment only
(:func:`auth_from_environment`): a service principal secret, a federated (OIDC) token file, a
managed identity, or the Azure CLI login, like the azure-native provider. Calls are retried with
exponential backoff on throttling and transient errors, a bounded number of times.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from infra.definitions.command import ScriptCommand, step_command
from infra.definitions.model import (
    AnyStep,
    Frequency,
    ParameterType,
    PipelineSpec,
    Recurrence,
    WeekDay,
)
from infra.definitions.refs import resolve_arguments
from infra.provider.port import (
    BackendError,
    EndpointRecord,
    EndpointVersion,
    PipelineBuild,
    PublishedPipelineRecord,
    ScheduleRecord,
    ScheduleSettings,
    Status,
    WorkspaceRef,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_ATTEMPTS = 5
BASE_DELAY_S = 1.0
_TRANSIENT_MARKERS = (
    "429",
    "too many requests",
    "throttl",
    "timed out",
    "timeout",
    "temporarily unavailable",
    "service unavailable",
    "502",
    "503",
    "504",
    "connection reset",
    "connection aborted",
)
_NOT_FOUND_MARKERS = ("404", "not found", "notfound", "does not exist")


def _azureml(module: str) -> Any:
    """Import an azureml module when first needed. Typed Any: azureml ships no type information
    (and mypy must not follow into its sources)."""
    return importlib.import_module(module)


# -- authentication ---------------------------------------------------------------------------


def _first_env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name)
        if value:
            return value
    return None


@dataclass(frozen=True)
class AuthChoice:
    """Which credential the environment provides (values stay in the environment)."""

    kind: str
    """'service_principal', 'workload_identity', 'managed_identity' or 'azure_cli'."""
    tenant_id: str | None = None
    client_id: str | None = None


def choose_auth() -> AuthChoice:
    """Pick the credential from environment variables, in the azure-native provider's order:
    service principal secret (AZURE_* or ARM_*), federated token file (OIDC: GitHub Actions,
    workload identity), managed identity (MSI/IDENTITY endpoint or ARM_USE_MSI), else Azure CLI."""
    tenant = _first_env("AZURE_TENANT_ID", "ARM_TENANT_ID")
    client = _first_env("AZURE_CLIENT_ID", "ARM_CLIENT_ID")
    if tenant and client and _first_env("AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET"):
        return AuthChoice("service_principal", tenant, client)
    if tenant and client and _first_env("AZURE_FEDERATED_TOKEN_FILE"):
        return AuthChoice("workload_identity", tenant, client)
    if _first_env("MSI_ENDPOINT", "IDENTITY_ENDPOINT", "ARM_USE_MSI"):
        return AuthChoice("managed_identity", None, client)
    return AuthChoice("azure_cli")


def auth_from_environment() -> Any:
    """The azureml authentication object for :func:`choose_auth` (never from resource inputs)."""
    auth = _azureml("azureml.core.authentication")

    choice = choose_auth()
    if choice.kind == "service_principal":
        secret = _first_env("AZURE_CLIENT_SECRET", "ARM_CLIENT_SECRET")
        return auth.ServicePrincipalAuthentication(choice.tenant_id, choice.client_id, secret)
    if choice.kind == "workload_identity":
        from azure.identity import WorkloadIdentityCredential

        credential = WorkloadIdentityCredential(
            tenant_id=choice.tenant_id,
            client_id=choice.client_id,
            token_file_path=_first_env("AZURE_FEDERATED_TOKEN_FILE"),
        )
        return auth.TokenAuthentication(
            lambda audience: credential.get_token(audience.rstrip("/") + "/.default").token
        )
    if choice.kind == "managed_identity":
        config = {"client_id": choice.client_id} if choice.client_id else None
        return auth.MsiAuthentication(identity_config=config)
    try:
        return auth.AzureCliAuthentication()
    except ImportError as exc:
        raise BackendError(
            "no Azure credentials in the environment: set AZURE_TENANT_ID, AZURE_CLIENT_ID and "
            "AZURE_CLIENT_SECRET (or AZURE_FEDERATED_TOKEN_FILE), run on a managed identity, or "
            "install the Azure CLI and `az login`"
        ) from exc


# -- retries ------------------------------------------------------------------------------------


def _status_code(exc: BaseException) -> int | None:
    # azureml's ErrorResponseException (msrest HttpOperationError) carries the HTTP response.
    code = getattr(getattr(exc, "response", None), "status_code", None)
    return code if isinstance(code, int) else None


def is_transient(exc: BaseException) -> bool:
    """Throttling, timeouts and 5xx gateway errors are worth retrying; nothing else is."""
    if isinstance(exc, ConnectionError | TimeoutError):
        return True
    code = _status_code(exc)
    if code is not None:
        return code in (408, 429, 500, 502, 503, 504)
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _TRANSIENT_MARKERS)


def is_not_found(exc: BaseException) -> bool:
    """Whether an error says the object does not exist."""
    if _status_code(exc) is not None:
        return _status_code(exc) == 404
    text = f"{type(exc).__name__} {exc}".lower()
    return any(marker in text for marker in _NOT_FOUND_MARKERS)


def with_retries(
    what: str,
    call: Callable[[], T],
    attempts: int = MAX_ATTEMPTS,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`, retrying transient failures with exponential backoff and jitter."""
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as exc:
            if attempt == attempts or not is_transient(exc):
                raise BackendError(f"{what} failed (attempt {attempt}/{attempts}): {exc}") from exc
            delay = BASE_DELAY_S * 2 ** (attempt - 1) * (1 + random.random() / 2)
            log.warning("%s: transient error (%s), retrying in %.1fs", what, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable")


# -- compilation (no workspace needed) -----------------------------------------------------------


def _parameter_default(kind: ParameterType, value: bool | int | float | str) -> Any:
    # The YAML loader already checked the type; convert so an int parameter is not sent as 3.0.
    converters: dict[ParameterType, Callable[[Any], Any]] = {
        ParameterType.STRING: str,
        ParameterType.INT: int,
        ParameterType.FLOAT: float,
        ParameterType.BOOL: bool,
    }
    return converters[kind](value)


def registry_of(image_ref: str) -> str:
    """The registry host of an image reference (`acr.azurecr.io/name:tag` -> `acr.azurecr.io`)."""
    first = image_ref.split("/", 1)[0]
    return first if "/" in image_ref and ("." in first or ":" in first) else ""


def make_environment(name: str, image_ref: str, identity: tuple[str, str] | None = None) -> Any:
    """An Environment running `image_ref` as is: no conda, no build, no registry password.

    The registry is given by address only. With `identity` (resource id, client id of the
    cluster's user-assigned identity, which holds AcrPull on the registry) the image is pulled
    with that identity (`ContainerRegistry.registry_identity`); without it Azure ML uses the
    compute's identity for the workspace's own registry.
    """
    Environment = _azureml("azureml.core").Environment

    env = Environment(name=name)
    env.docker.base_image = image_ref
    env.python.user_managed_dependencies = True
    registry = registry_of(image_ref)
    if registry:
        env.docker.base_image_registry.address = registry
        env.docker.base_image_registry.username = None
        env.docker.base_image_registry.password = None
    if registry and identity is not None:
        registry_identity = _azureml("azureml.core.container_registry").RegistryIdentity()
        registry_identity.resource_id = identity[0]
        registry_identity.client_id = identity[1] or None
        env.docker.base_image_registry.registry_identity = registry_identity
    return env


@dataclass
class AzureBinder:
    """Argument binder for :func:`infra.definitions.refs.resolve_arguments` (Azure objects)."""

    step: str
    parameters: dict[str, Any]
    outputs: dict[tuple[str, str], Any]

    def literal(self, value: str) -> Any:
        """Literal text, as is."""
        return value

    def parameter(self, name: str) -> Any:
        """The shared PipelineParameter."""
        return self.parameters[name]

    def step_input(self, step: str, output: str) -> Any:
        """An upstream output, mounted read-only as this step's input."""
        return self.outputs[(step, output)].as_input(name=f"{step}_{output}").as_mount()

    def step_output(self, name: str) -> Any:
        """This step's own output folder (uploaded when the step ends)."""
        return self.outputs[(self.step, name)]


@dataclass
class CompiledPipeline:
    """Steps and what they share, built from a spec without a workspace."""

    steps: list[Any]
    parameters: dict[str, Any]
    environments: dict[str, Any]
    runconfigs: dict[tuple[str, str], Any] = field(default_factory=dict)


def _runconfig(compute: str, env: Any, variables: dict[str, str]) -> Any:
    RunConfiguration = _azureml("azureml.core.runconfig").RunConfiguration

    config = RunConfiguration()
    config.target = compute
    config.environment = env
    config.environment_variables = dict(variables)
    return config


def _make_step(
    spec: PipelineSpec, step: AnyStep, code_dir: Path, args: list[Any], runconfig: Any
) -> Any:
    AzureCommandStep = _azureml("azureml.pipeline.steps").CommandStep
    PythonScriptStep = _azureml("azureml.pipeline.steps").PythonScriptStep

    common: dict[str, Any] = {
        "name": step.name,
        "compute_target": spec.step_compute(step),
        "runconfig": runconfig,
        "source_directory": str(code_dir),
        "allow_reuse": step.allow_reuse,
    }
    match step_command(step):
        case ScriptCommand(language="python", script=script):
            return PythonScriptStep(script_name=script, arguments=args, **common)
        case command:
            # Everything else (R: RScriptStep is deprecated) runs its command line in a
            # CommandStep, which splits the first item with shlex: quote it so it stays one word.
            words = command.argv()
            return AzureCommandStep(command=[shlex.quote(words[0]), *words[1:], *args], **common)


def compile_steps(
    spec: PipelineSpec,
    folder: Path,
    images: dict[str, str],
    identities: dict[str, tuple[str, str]] | None = None,
) -> CompiledPipeline:
    """Build the azureml steps of a validated spec; `images` maps image keys to references,
    `identities` cluster names to the (resource id, client id) that pulls the image there."""
    OutputFileDatasetConfig = _azureml("azureml.data").OutputFileDatasetConfig
    PipelineParameter = _azureml("azureml.pipeline.core").PipelineParameter

    parameters = {
        name: PipelineParameter(name=name, default_value=_parameter_default(p.type, p.default))
        for name, p in spec.parameters.items()
    }
    outputs = {
        (step.name, out): OutputFileDatasetConfig(name=f"{step.name}_{out}")
        for step in spec.steps
        for out in step.outputs
    }
    environments: dict[str, Any] = {}
    compiled = CompiledPipeline([], parameters, environments)
    by_name: dict[str, Any] = {}
    for step in spec.steps:
        image_key, compute = spec.step_image(step), spec.step_compute(step)
        if image_key not in images:
            raise BackendError(f"pipeline {spec.name!r}: no image reference for {image_key!r}")
        identity = (identities or {}).get(compute)
        # One environment per image, or per image and cluster when clusters pull the image with
        # their own identities.
        env_key = f"{image_key}@{compute}" if identity else image_key
        if env_key not in environments:
            env_name = f"{spec.name}-{env_key.replace('@', '-')}"
            environments[env_key] = make_environment(env_name, images[image_key], identity)
        args = resolve_arguments(step.args, AzureBinder(step.name, parameters, outputs))
        runconfig = _runconfig(compute, environments[env_key], step.environment)
        compiled.runconfigs[(step.name, env_key)] = runconfig
        azure_step = _make_step(spec, step, folder / step.code, args, runconfig)
        for other in step.after:
            azure_step.run_after(by_name[other])
        by_name[step.name] = azure_step
        compiled.steps.append(azure_step)
    return compiled


_WEEK_DAYS = {d.value for d in WeekDay}


def make_recurrence(rec: Recurrence) -> Any:
    """An azureml ScheduleRecurrence for a spec recurrence (validated by azureml's own rules)."""
    ScheduleRecurrence = _azureml("azureml.pipeline.core.schedule").ScheduleRecurrence
    TimeZone = _azureml("azureml.pipeline.core.schedule").TimeZone

    time_zone = None
    if rec.time_zone:
        try:
            time_zone = TimeZone(rec.time_zone)
        except ValueError as exc:
            raise BackendError(
                f"time zone {rec.time_zone!r} is not an Azure ML time zone (use Windows names "
                "such as 'UTC' or 'W. Europe Standard Time')"
            ) from exc
    recurrence = ScheduleRecurrence(
        frequency=rec.frequency.value,
        interval=rec.interval,
        start_time=rec.start_time,
        time_zone=time_zone,
        hours=rec.hours,
        minutes=rec.minutes,
        week_days=[d.value for d in rec.week_days] if rec.week_days else None,
    )
    recurrence.validate()
    return recurrence


def recurrence_from_azure(recurrence: Any) -> Recurrence:
    """A spec recurrence from an azureml ScheduleRecurrence (as `Schedule.recurrence` reports)."""
    zone = recurrence.time_zone
    days = [d for d in (recurrence.week_days or []) if d in _WEEK_DAYS]
    return Recurrence(
        frequency=Frequency(recurrence.frequency),
        interval=int(recurrence.interval),
        hours=list(recurrence.hours) if recurrence.hours is not None else None,
        minutes=list(recurrence.minutes) if recurrence.minutes is not None else None,
        week_days=[WeekDay(d) for d in days] if recurrence.week_days else None,
        time_zone=getattr(zone, "value", zone),
        start_time=recurrence.start_time,
    )


# -- the adapter ----------------------------------------------------------------------------------


def _published(pipeline: Any) -> PublishedPipelineRecord:
    return PublishedPipelineRecord(
        pipeline.id, pipeline.name, pipeline.version or "", Status(pipeline.status)
    )


class AzureMLBackend:
    """The backend port on a real Azure ML workspace."""

    def __init__(self, workspace: WorkspaceRef) -> None:
        self.ref = workspace
        self._workspace: Any = None

    def workspace(self) -> Any:
        """The azureml Workspace, authenticated from the environment (made on first use)."""
        if self._workspace is None:
            Workspace = _azureml("azureml.core").Workspace

            auth = auth_from_environment()
            self._workspace = with_retries(
                f"get workspace {self.ref.workspace_name}",
                lambda: Workspace(
                    self.ref.subscription_id,
                    self.ref.resource_group,
                    self.ref.workspace_name,
                    auth=auth,
                ),
            )
        return self._workspace

    def _published_pipeline(self, pipeline_id: str) -> Any:
        PublishedPipeline = _azureml("azureml.pipeline.core").PublishedPipeline

        return with_retries(
            f"get published pipeline {pipeline_id}",
            lambda: PublishedPipeline.get(self.workspace(), pipeline_id),
        )

    def _endpoint_object(self, endpoint_id: str) -> Any:
        PipelineEndpoint = _azureml("azureml.pipeline.core").PipelineEndpoint

        return with_retries(
            f"get pipeline endpoint {endpoint_id}",
            lambda: PipelineEndpoint.get(self.workspace(), id=endpoint_id),
        )

    @staticmethod
    def _endpoint_record(endpoint: Any) -> EndpointRecord:
        versions = tuple(
            EndpointVersion(str(v.version), _published(v.pipeline))
            for v in with_retries(f"list versions of {endpoint.name}", endpoint.list_versions)
        )
        return EndpointRecord(
            endpoint.id,
            endpoint.name,
            Status(endpoint.status),
            str(endpoint.default_version),
            endpoint.endpoint,
            versions,
        )

    # published pipelines

    def publish_pipeline(self, build: PipelineBuild) -> PublishedPipelineRecord:
        """Compile, upload code and publish; the version records the content hash."""
        Pipeline = _azureml("azureml.pipeline.core").Pipeline

        compiled = compile_steps(build.spec, build.folder, build.images, build.registry_identities)
        pipeline = Pipeline(
            workspace=self.workspace(), steps=compiled.steps, description=build.spec.description
        )
        published = with_retries(
            f"publish pipeline {build.name}",
            lambda: pipeline.publish(
                name=build.name,
                description=build.spec.description,
                version=build.version_key or build.content_hash,
            ),
        )
        return _published(published)

    def find_published(self, name: str) -> list[PublishedPipelineRecord]:
        """Active published pipelines of this name."""
        PublishedPipeline = _azureml("azureml.pipeline.core").PublishedPipeline

        found = with_retries(
            "list published pipelines",
            lambda: PublishedPipeline.list(self.workspace(), active_only=True),
        )
        return [_published(p) for p in found if p.name == name]

    def disable_pipeline(self, pipeline_id: str) -> None:
        """Disable a published pipeline."""
        pipeline = self._published_pipeline(pipeline_id)
        with_retries(f"disable published pipeline {pipeline_id}", pipeline.disable)

    # endpoints

    def create_endpoint(self, name: str, description: str, pipeline_id: str) -> EndpointRecord:
        """`PipelineEndpoint.publish` with an already published pipeline."""
        PipelineEndpoint = _azureml("azureml.pipeline.core").PipelineEndpoint

        pipeline = self._published_pipeline(pipeline_id)
        endpoint = with_retries(
            f"create pipeline endpoint {name}",
            lambda: PipelineEndpoint.publish(self.workspace(), name, description, pipeline),
        )
        return self._endpoint_record(endpoint)

    def get_endpoint(
        self, endpoint_id: str | None = None, name: str | None = None
    ) -> EndpointRecord | None:
        """By id or name; None when the service says it does not exist."""
        PipelineEndpoint = _azureml("azureml.pipeline.core").PipelineEndpoint

        try:
            endpoint = PipelineEndpoint.get(self.workspace(), id=endpoint_id, name=name)
        except Exception as exc:
            if is_not_found(exc):
                return None
            if is_transient(exc):
                endpoint = with_retries(
                    f"get pipeline endpoint {endpoint_id or name}",
                    lambda: PipelineEndpoint.get(self.workspace(), id=endpoint_id, name=name),
                )
            else:
                raise BackendError(f"get pipeline endpoint {endpoint_id or name}: {exc}") from exc
        return None if endpoint is None else self._endpoint_record(endpoint)

    def add_default_version(self, endpoint_id: str, pipeline_id: str) -> EndpointRecord:
        """`PipelineEndpoint.add_default`."""
        endpoint = self._endpoint_object(endpoint_id)
        pipeline = self._published_pipeline(pipeline_id)
        with_retries(
            f"add default version to {endpoint.name}", lambda: endpoint.add_default(pipeline)
        )
        return self._endpoint_record(self._endpoint_object(endpoint_id))

    def set_default_version(self, endpoint_id: str, version: str) -> EndpointRecord:
        """`PipelineEndpoint.set_default_version`."""
        endpoint = self._endpoint_object(endpoint_id)
        with_retries(
            f"set default version of {endpoint.name}",
            lambda: endpoint.set_default_version(version),
        )
        return self._endpoint_record(self._endpoint_object(endpoint_id))

    def archive_endpoint(self, endpoint_id: str) -> None:
        """`PipelineEndpoint.archive`."""
        endpoint = self._endpoint_object(endpoint_id)
        with_retries(f"archive pipeline endpoint {endpoint.name}", endpoint.archive)

    def reactivate_endpoint(self, endpoint_id: str, name: str) -> EndpointRecord:
        """`PipelineEndpoint.reactivate`."""
        endpoint = self._endpoint_object(endpoint_id)
        with_retries(f"reactivate pipeline endpoint {name}", lambda: endpoint.reactivate(name))
        return self._endpoint_record(self._endpoint_object(endpoint_id))

    # schedules

    def _schedule_record(self, schedule: Any) -> ScheduleRecord:
        settings = ScheduleSettings(
            recurrence=recurrence_from_azure(schedule.recurrence),
            description=schedule.description or "",
            parameters=None,  # not exposed by azureml's Schedule object
            status=Status(schedule.status),
        )
        return ScheduleRecord(
            schedule.id, schedule.name, schedule.pipeline_endpoint_id or "", "", settings
        )

    def create_schedule(
        self, name: str, endpoint_id: str, experiment: str, settings: ScheduleSettings
    ) -> ScheduleRecord:
        """`Schedule.create_for_pipeline_endpoint`, then `disable` when paused."""
        Schedule = _azureml("azureml.pipeline.core").Schedule

        schedule = with_retries(
            f"create schedule {name}",
            lambda: Schedule.create_for_pipeline_endpoint(
                self.workspace(),
                name=name,
                pipeline_endpoint_id=endpoint_id,
                experiment_name=experiment,
                recurrence=make_recurrence(settings.recurrence),
                description=settings.description,
                pipeline_parameters=settings.parameters or None,
            ),
        )
        if settings.status is Status.DISABLED:
            with_retries(f"disable schedule {name}", schedule.disable)
        return self._schedule_record(schedule)

    def update_schedule(self, schedule_id: str, settings: ScheduleSettings) -> ScheduleRecord:
        """`Schedule.update` with recurrence, description, parameters and status at once."""
        Schedule = _azureml("azureml.pipeline.core").Schedule

        schedule = with_retries(
            f"get schedule {schedule_id}", lambda: Schedule.get(self.workspace(), schedule_id)
        )
        with_retries(
            f"update schedule {schedule.name}",
            lambda: schedule.update(
                description=settings.description,
                recurrence=make_recurrence(settings.recurrence),
                pipeline_parameters=settings.parameters,
                status=settings.status.value,
            ),
        )
        return self._schedule_record(schedule)

    def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """`Schedule.get`; None when it does not exist."""
        Schedule = _azureml("azureml.pipeline.core").Schedule

        try:
            schedule = with_retries(
                f"get schedule {schedule_id}", lambda: Schedule.get(self.workspace(), schedule_id)
            )
        except BackendError as exc:
            if exc.__cause__ is not None and is_not_found(exc.__cause__):
                return None
            raise
        return None if schedule is None else self._schedule_record(schedule)

    def find_schedules(self, endpoint_id: str, name: str) -> list[ScheduleRecord]:
        """Schedules of this name on this endpoint, any status."""
        Schedule = _azureml("azureml.pipeline.core").Schedule

        found = with_retries(
            f"list schedules of endpoint {endpoint_id}",
            lambda: Schedule.list(
                self.workspace(), active_only=False, pipeline_endpoint_id=endpoint_id
            ),
        )
        return [self._schedule_record(s) for s in found if s.name == name]
