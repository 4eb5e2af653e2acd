"""An ADF trigger whose started/stopped state is managed state: the dynamic `DataFactoryTrigger`.

Why not azure-native's `datafactory.Trigger` plus a switch: ADF creates triggers stopped, starts
them only through a separate call (pulumi-azure-native#3540), and refuses to update or delete a
started trigger (`TriggerEnabledCannotUpdate`). A switch resource that starts the trigger would
make the next change of the trigger's recurrence fail. So one resource owns both: it stops the
trigger before writing its properties or deleting it, and starts it again when `started` says so.
`started` is diffed like any input, and refresh reads the runtime state back (drift: someone
stopped it in the ADF studio), along with the properties the stack manages.

Layers as for the pipeline resources: typed props, operations against the port
(:mod:`infra.provider.adf_port`), a provider whose methods are a few lines, a thin Resource.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckFailure,
    CheckResult,
    ConfigureRequest,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pydantic import BaseModel, ConfigDict, ValidationError

from infra.paths import project_path
from infra.provider.adf_port import (
    LocalTriggerStore,
    RuntimeState,
    TriggerError,
    TriggerPort,
    TriggerRecord,
    TriggerRef,
    store_path_for,
)
from infra.provider.pickling import reset_pickler
from infra.provider.props import dump, strip, unknown_keys
from infra.provider.provider import ProviderSettings

TRIGGER_REPLACE_KEYS = ("subscription_id", "resource_group", "factory_name", "name")
_OUTPUTS = ("trigger_id", "runtime_state")


class TriggerInputs(BaseModel):
    """Inputs of a trigger: where it lives, its ADF properties (REST shape), whether it runs."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    subscription_id: str
    resource_group: str
    factory_name: str
    name: str
    properties: dict[str, Any]
    started: bool
    owner: str
    """Annotation written on the trigger: which stack made it (a create adopts only its own)."""

    def ref(self) -> TriggerRef:
        """As the port's record."""
        return TriggerRef(self.subscription_id, self.resource_group, self.factory_name, self.name)

    def body(self) -> dict[str, Any]:
        """The properties as written: numbers normalized, the owner annotation added."""
        body = normalize(self.properties)
        annotations = [a for a in body.get("annotations", []) if a != self.owner]
        return {**body, "annotations": [*annotations, self.owner]}


class TriggerOutputs(TriggerInputs):
    """Inputs plus what ADF reports."""

    trigger_id: str
    runtime_state: RuntimeState

    @classmethod
    def of(cls, want: TriggerInputs, record: TriggerRecord) -> TriggerOutputs:
        """Outputs after an operation (or a read): the managed part of the live properties."""
        live = managed_view(record.properties, want.body())
        return cls(
            **{
                **want.model_dump(),
                "properties": live,
                "started": record.runtime_state is RuntimeState.STARTED,
            },
            trigger_id=record.id,
            runtime_state=record.runtime_state,
        )

    def inputs(self) -> TriggerInputs:
        """The input part."""
        return TriggerInputs.model_validate(self.model_dump())


def normalize(value: Any) -> Any:
    """Engine values as written: whole floats back to ints (the engine turns ints into floats)."""
    if isinstance(value, dict):
        return {k: normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def managed_view(actual: Any, wanted: Any) -> Any:
    """`actual` limited to the keys `wanted` sets (nested objects too): ADF adds its own keys
    (runtimeState, defaults), which are not drift."""
    if isinstance(actual, dict) and isinstance(wanted, dict):
        return {k: managed_view(actual[k], wanted[k]) for k in wanted if k in actual}
    return normalize(actual)


# -- operations ---------------------------------------------------------------------------------


def _in_sync(record: TriggerRecord, want: TriggerInputs) -> bool:
    return managed_view(record.properties, want.body()) == want.body()


def apply(port: TriggerPort, want: TriggerInputs, current: TriggerRecord | None) -> TriggerRecord:
    """Bring the trigger to `want`: stop it if its properties must change (ADF refuses to update
    a started trigger), write them, then start or stop it as `started` says."""
    ref = want.ref()
    if current is None or not _in_sync(current, want):
        if current is not None and current.runtime_state is RuntimeState.STARTED:
            port.stop(ref)
        port.put(ref, want.body())
    record = _get(port, ref)
    if want.started and record.runtime_state is not RuntimeState.STARTED:
        port.start(ref)
    elif not want.started and record.runtime_state is RuntimeState.STARTED:
        port.stop(ref)
    return _get(port, ref)


def _get(port: TriggerPort, ref: TriggerRef) -> TriggerRecord:
    record = port.get(ref)
    if record is None:
        raise TriggerError("TriggerNotFound", f"trigger {ref.name!r} vanished while being written")
    return record


def create(port: TriggerPort, want: TriggerInputs) -> TriggerRecord:
    """Create the trigger; adopt one of the same name only if this stack's annotation is on it
    (what an interrupted create leaves), never someone else's."""
    current = port.get(want.ref())
    if current is not None and want.owner not in current.properties.get("annotations", []):
        raise TriggerError(
            "TriggerExists",
            f"trigger {want.name!r} already exists in factory {want.factory_name!r} and was not "
            f"created by this stack (no {want.owner!r} annotation); rename or delete it",
        )
    return apply(port, want, current)


def delete(port: TriggerPort, ref: TriggerRef) -> None:
    """Stop (ADF refuses to delete a started trigger) and delete; already gone is fine."""
    current = port.get(ref)
    if current is None:
        return
    if current.runtime_state is RuntimeState.STARTED:
        port.stop(ref)
    port.delete(ref)


# -- provider -----------------------------------------------------------------------------------


def _diff(changes: bool, replaces: list[str]) -> DiffResult:
    # A replacement is always another ARM object (another factory, group or trigger name), so
    # it can be created before the old one is deleted. The engine ignores `stables`.
    return DiffResult(changes=changes, replaces=replaces, stables=[], delete_before_replace=False)


class DataFactoryTriggerProvider(ResourceProvider):
    """Dynamic provider of :class:`DataFactoryTrigger` (stateless: ports made in the host)."""

    serialize_as_secret_always = False

    def __init__(self) -> None:
        super().__init__()
        self._settings = ProviderSettings()
        self._port: TriggerPort | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return {}  # only the class is pickled: no client, no setting, no credential

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def configure(self, req: ConfigureRequest) -> None:
        """Take the backend choice (azureml: ARM; local: the store beside the local backend's)."""
        self._settings = ProviderSettings.from_request(req)

    def port(self) -> TriggerPort:
        """The trigger API, made once per host."""
        with self._lock:
            if self._port is None:
                if self._settings.backend == "local":
                    path = store_path_for(project_path(self._settings.local_store_path))
                    self._port = LocalTriggerStore(path)
                else:
                    # Imported here: azure-core and azure-identity load only when ARM is used.
                    from infra.provider.adf_rest import RestTriggerPort

                    self._port = RestTriggerPort()
            return self._port

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Validate the known inputs."""
        props = strip(news)
        if unknown_keys(props):
            return CheckResult(inputs=news, failures=[])
        try:
            TriggerInputs.model_validate(props)
        except ValidationError as exc:
            failures = [
                CheckFailure(".".join(str(p) for p in e["loc"]), e["msg"]) for e in exc.errors()
            ]
            return CheckResult(inputs=news, failures=failures)
        return CheckResult(inputs=news, failures=[])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Changed properties, owner or started state (refresh may have read drift); location or
        name replace."""
        replaces = [k for k in TRIGGER_REPLACE_KEYS if olds.get(k) != news.get(k)]
        if unknown_keys(strip(news)):  # preview: unknown values may change anything
            return _diff(True, replaces)
        want = TriggerInputs.model_validate(strip(news))
        try:
            old = TriggerOutputs.model_validate(strip(olds))
        except ValidationError:  # a state this provider did not write: rewrite it
            return _diff(True, replaces)
        changed = (
            normalize(old.properties) != want.body()
            or old.started != want.started
            or old.owner != want.owner
        )
        return _diff(changed or bool(replaces), replaces)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Write the trigger and start it if asked."""
        want = TriggerInputs.model_validate(strip(props))
        record = create(self.port(), want)
        return CreateResult(record.id, dump(TriggerOutputs.of(want, record)))

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Stop if the properties change, write them, start or stop as asked."""
        want = TriggerInputs.model_validate(strip(news))
        record = apply(self.port(), want, self.port().get(want.ref()))
        return UpdateResult(dump(TriggerOutputs.of(want, record)))

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The live trigger: managed properties and runtime state; gone reads as gone."""
        old = TriggerOutputs.model_validate(strip(props))
        record = self.port().get(old.ref())
        if record is None:
            return ReadResult("", {})
        return ReadResult(id_, dump(TriggerOutputs.of(old.inputs(), record)))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Stop and delete."""
        old = TriggerOutputs.model_validate(strip(props))
        delete(self.port(), old.ref())


@dataclass(frozen=True)
class DataFactoryTriggerArgs:
    """Inputs of :class:`DataFactoryTrigger`."""

    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    factory_name: pulumi.Input[str]
    name: str
    properties: pulumi.Input[dict[str, Any]]
    """The trigger's ADF properties in REST shape (`type`, `typeProperties`, `pipelines`, ...)."""
    started: bool
    owner: str


class DataFactoryTrigger(Resource, module="datafactory", name="Trigger"):
    """An ADF trigger with its runtime state managed (started or stopped, as `started` says)."""

    # Output attributes for type checkers only: see infra.provider.resources.
    if TYPE_CHECKING:
        trigger_id: pulumi.Output[str]
        runtime_state: pulumi.Output[str]

    def __init__(
        self, name: str, args: DataFactoryTriggerArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            "subscription_id": args.subscription_id,
            "resource_group": args.resource_group,
            "factory_name": args.factory_name,
            "name": args.name,
            "properties": args.properties,
            "started": args.started,
            "owner": args.owner,
            **dict.fromkeys(_OUTPUTS),
        }
        reset_pickler()
        super().__init__(DataFactoryTriggerProvider(), name, props, opts)
