"""Dynamic resource providers for pipeline endpoints and schedules.

They run inside the engine's provider host (`python -m pulumi.dynamic`), which unpickles them by
reference (dill) from this installed module, then calls :meth:`configure` once with the stack
configuration (namespaced keys such as ``azureml-pipelines:backend``; Pulumi >= 3.138). Nothing
happens at import: no client, no config read, no network. Backends are made on first use, per
workspace, and authenticate from the environment (never from inputs), so nothing secret is ever
pickled, stored as an input or returned as an output.

Each method parses the engine's dict once into the typed props of :mod:`infra.provider.props` and
delegates to :mod:`infra.provider.operations`.
"""

from __future__ import annotations

import threading
from typing import Any, TypeVar

from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    ResourceProvider,
    UpdateResult,
)
from pydantic import BaseModel, ValidationError

from infra.paths import project_path, project_root
from infra.provider import operations as ops
from infra.provider.build import load_build
from infra.provider.local_backend import LocalBackend, LocalStore
from infra.provider.port import Backend, BackendError, WorkspaceRef
from infra.provider.props import (
    ENDPOINT_REPLACE_KEYS,
    SCHEDULE_REPLACE_KEYS,
    EndpointInputs,
    EndpointOutputs,
    OwnedProps,
    ScheduleInputs,
    ScheduleOutputs,
    dump,
    strip,
    unknown_keys,
)
from infra.settings import BACKEND_KEYS, NAMESPACE, BackendSettings, provider_settings


class ProviderSettings:
    """The provider's part of the stack settings (`backend`, `localStorePath`), read through the
    one settings model (:func:`infra.settings.provider_settings`): the same validation and
    located errors as the program, and defaults only from `Pulumi.yaml`."""

    def __init__(self, settings: BackendSettings | None = None) -> None:
        self._settings = settings

    @classmethod
    def from_request(cls, req: ConfigureRequest) -> ProviderSettings:
        """The settings from the config the engine sends to `configure()`."""
        raw = {
            f"{NAMESPACE}:{key}": str(value)
            for key in BACKEND_KEYS
            if (value := req.config.get(f"{NAMESPACE}:{key}")) is not None
        }
        return cls(provider_settings(raw))

    def _resolved(self) -> BackendSettings:
        # Not configured (e.g. a bare delete): the project's Pulumi.yaml defaults.
        if self._settings is None:
            self._settings = provider_settings({})
        return self._settings

    @property
    def backend(self) -> str:
        """`azureml` or `local`."""
        return self._resolved().backend.value

    @property
    def local_store_path(self) -> str:
        """The local store, as configured (relative to the project root)."""
        return self._resolved().local_store_path


class _Provider(ResourceProvider):
    """Backend selection shared by both providers."""

    # The pickled provider holds no secret (the secrets audit test proves it), so it need not be
    # stored encrypted; keeping it plain keeps the state inspectable.
    serialize_as_secret_always = False

    def __init__(self) -> None:
        super().__init__()
        self._settings = ProviderSettings()
        self._backends: dict[WorkspaceRef, Backend] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        # Only the class travels in the pickle: settings come from configure(), clients are made
        # in the provider host.
        return {}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def configure(self, req: ConfigureRequest) -> None:
        """Take the backend choice and store path from the stack configuration."""
        self._settings = ProviderSettings.from_request(req)

    def backend(self, workspace: WorkspaceRef) -> Backend:
        """The backend for a workspace, made once (threads share it)."""
        with self._lock:
            if workspace not in self._backends:
                self._backends[workspace] = self._make_backend(workspace)
            return self._backends[workspace]

    def _make_backend(self, workspace: WorkspaceRef) -> Backend:
        if self._settings.backend == "local":
            store = LocalStore(project_path(self._settings.local_store_path))
            return LocalBackend(store, workspace)
        # Imported here: the adapter module imports azureml lazily too, but even it is not
        # needed unless the azureml backend is selected.
        from infra.provider.azureml_v1.adapter import AzureMLBackend

        return AzureMLBackend(workspace)


def _check(model: type[OwnedProps], news: dict[str, Any]) -> CheckResult:
    """Validate inputs that are known (preview may pass unknowns), return them unchanged."""
    props = strip(news)
    if unknown_keys(props):  # preview: validated again when the values are known
        return CheckResult(inputs=news, failures=[])
    try:
        parsed = model.model_validate(props)
    except ValidationError as exc:
        failures = [
            CheckFailure(".".join(str(p) for p in e["loc"]) or "(inputs)", e["msg"])
            for e in exc.errors()
        ]
        return CheckResult(inputs=news, failures=failures)
    if parsed.owner is None:  # optional only so that states from before owners still parse
        reason = "required: the project and stack that own what this resource publishes"
        return CheckResult(inputs=news, failures=[CheckFailure("owner", reason)])
    return CheckResult(inputs=news, failures=[])


def _changed_keys(
    old: BaseModel, desired: BaseModel, replace_keys: tuple[str, ...]
) -> tuple[list[str], list[str]]:
    """(changed input keys, those forcing replacement): the input part of the old outputs against
    the new inputs, both parsed, so engine floats and dropped None values compare equal."""
    old_values, new_values = dump(old), dump(desired)
    changed = [k for k in type(desired).model_fields if old_values.get(k) != new_values.get(k)]
    return changed, [k for k in changed if k in replace_keys]


M = TypeVar("M", bound=BaseModel)


def _parse_or_none(model: type[M], props: dict[str, Any]) -> M | None:
    try:
        return model.model_validate(strip(props))
    except ValidationError:
        return None


def _replaced(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [k for k in keys if olds.get(k) != news.get(k)]


def _diff(changes: bool, replaces: list[str]) -> DiffResult:
    # Replacement creates the new object before deleting the old one: names stay unique
    # because archiving frees an endpoint's name, and schedules may share one.
    return DiffResult(changes=changes, replaces=replaces, stables=[], delete_before_replace=False)


class PipelineEndpointProvider(_Provider):
    """A pipeline endpoint and the published versions behind it."""

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the known inputs."""
        return _check(EndpointInputs, news)

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Changed inputs, or drift seen by refresh; name or workspace replace."""
        if unknown := unknown_keys(news):  # preview: unknown values may change anything
            return _diff(True, [k for k in unknown if k in ENDPOINT_REPLACE_KEYS])
        want = EndpointInputs.model_validate(strip(news))
        old = _parse_or_none(EndpointOutputs, olds)
        if old is None:  # a state written by an older provider: rewrite it
            return _diff(True, _replaced(olds, news, ENDPOINT_REPLACE_KEYS))
        changed, replaces = _changed_keys(old, want, ENDPOINT_REPLACE_KEYS)
        changed = [k for k in changed if k != "adopt_existing"]
        drift = not old.in_sync()
        return _diff(bool(changed) or drift, replaces)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Publish and create the endpoint (or adopt what an interrupted create left)."""
        want = EndpointInputs.model_validate(strip(props))
        endpoint = ops.create_endpoint(self.backend(want.workspace()), want, _loader(want))
        return CreateResult(endpoint.id, dump(EndpointOutputs.of(want, endpoint)))

    def update(self, id_: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Publish a new default version if needed, prune versions beyond retention."""
        want = EndpointInputs.model_validate(strip(news))
        endpoint = ops.update_endpoint(self.backend(want.workspace()), id_, want, _loader(want))
        return UpdateResult(dump(EndpointOutputs.of(want, endpoint)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The live endpoint; an unknown id reads as gone (refresh then drops it)."""
        old = EndpointOutputs.model_validate(strip(props))
        endpoint = self.backend(old.workspace()).get_endpoint(endpoint_id=id_)
        if endpoint is None:
            return ReadResult("", {})
        return ReadResult(id_, dump(EndpointOutputs.of(old.inputs(), endpoint)))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Disable every version and archive the endpoint."""
        old = EndpointOutputs.model_validate(strip(props))
        ops.delete_endpoint(self.backend(old.workspace()), id_, old.owner_record())


def _loader(want: EndpointInputs) -> ops.BuildLoader:
    return lambda: load_build(
        want.name,
        want.code_root,
        want.images,
        want.content_hash,
        project_root(),
        want.version_key(),
        want.identities(),
        want.owner_record(),
    )


def _experiment_change(schedule: str, was: str, now: str) -> str:
    """Why a schedule's experiment cannot change, and what to do instead."""
    return (
        f"schedule {schedule!r}: its experiment cannot change from {was!r} to {now!r} (Azure ML "
        "cannot update a schedule's experiment); rename the schedule in its definition to "
        "create a new one, or keep the experiment"
    )


class PipelineScheduleProvider(_Provider):
    """A recurring schedule on a pipeline endpoint (follows its default version)."""

    def check(self, olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the known inputs; refuse an experiment change already at preview."""
        result = _check(ScheduleInputs, news)
        was, now = olds.get("experiment"), news.get("experiment")
        if not result.failures and isinstance(was, str) and isinstance(now, str) and was != now:
            reason = _experiment_change(str(news.get("name")), was, now)
            return CheckResult(inputs=news, failures=[CheckFailure("experiment", reason)])
        return result

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Recurrence, parameters, description and status update in place; name, target or
        workspace replace."""
        if unknown := unknown_keys(news):  # preview: unknown values may change anything
            return _diff(True, [k for k in unknown if k in SCHEDULE_REPLACE_KEYS])
        want = ScheduleInputs.model_validate(strip(news))
        old = _parse_or_none(ScheduleOutputs, olds)
        if old is None:  # a state written by an older provider: rewrite it
            return _diff(True, _replaced(olds, news, SCHEDULE_REPLACE_KEYS))
        changed, replaces = _changed_keys(old, want, SCHEDULE_REPLACE_KEYS)
        # recurrence_text is derived from recurrence; compare settings, not their wording.
        changed = [k for k in changed if k != "recurrence_text"]
        settings_drift = old.inputs().settings() != want.settings()
        return _diff(bool(changed) or settings_drift, replaces)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the schedule on its endpoint (paused when `enabled` is false)."""
        want = ScheduleInputs.model_validate(strip(props))
        schedule = ops.create_schedule(self.backend(want.workspace()), want)
        return CreateResult(schedule.id, dump(ScheduleOutputs.of(want, schedule)))

    def update(self, id_: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Update recurrence, parameter values, description and status in place."""
        want = ScheduleInputs.model_validate(strip(news))
        was = olds.get("experiment")
        if was is not None and was != want.experiment:  # check refuses it first; kept as a guard
            raise BackendError(_experiment_change(want.name, was, want.experiment))
        schedule = ops.update_schedule(self.backend(want.workspace()), id_, want)
        return UpdateResult(dump(ScheduleOutputs.of(want, schedule)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The live schedule settings (so refresh shows a disabled or changed schedule)."""
        old = ScheduleOutputs.model_validate(strip(props))
        schedule = self.backend(old.workspace()).get_schedule(id_)
        if schedule is None:
            return ReadResult("", {})
        return ReadResult(id_, dump(ScheduleOutputs.of(old.inputs(), schedule)))

    def delete(self, id_: str, props: dict[str, Any]) -> None:
        """Disable the schedule (Azure ML v1 cannot delete one)."""
        old = ScheduleOutputs.model_validate(strip(props))
        ops.delete_schedule(self.backend(old.workspace()), id_)
