"""Drive the real dynamic provider host (`python -m pulumi.dynamic`) over gRPC, as the engine does.

:class:`ProviderHost` speaks the ResourceProvider protocol with the SDK's own serialization.
:class:`Stack` plays the engine's part for a handful of resources: check → diff → create/update,
replacement (create before delete), refresh (read) and destroy, keeping outputs as state.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import struct_pb2
from pulumi.dynamic.dynamic import serialize_provider
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from infra.provider.adf_trigger import DataFactoryTriggerProvider
from infra.provider.props import PROVIDER_KEY
from infra.provider.provider import PipelineEndpointProvider, PipelineScheduleProvider
from tests.provider.faults import FaultyEndpointProvider, FaultyScheduleProvider

ENDPOINT_TYPE = "pulumi-python:dynamic/azureml:PipelineEndpoint"
SCHEDULE_TYPE = "pulumi-python:dynamic/azureml:PipelineSchedule"
ADF_TRIGGER_TYPE = "pulumi-python:dynamic/datafactory:Trigger"
PROVIDERS = {
    ADF_TRIGGER_TYPE: serialize_provider(DataFactoryTriggerProvider()),
    ENDPOINT_TYPE: serialize_provider(PipelineEndpointProvider()),
    SCHEDULE_TYPE: serialize_provider(PipelineScheduleProvider()),
}
"""The real providers, serialized as the engine stores them."""
FAULTY_PROVIDERS = {
    **PROVIDERS,
    ENDPOINT_TYPE: serialize_provider(FaultyEndpointProvider()),
    SCHEDULE_TYPE: serialize_provider(FaultyScheduleProvider()),
}
"""The real providers on a counted, fault-injecting backend (see :mod:`tests.provider.faults`)."""
REPO_ROOT = Path(__file__).resolve().parents[2]


def to_struct(props: dict[str, Any]) -> struct_pb2.Struct:
    """Serialize like the engine/SDK does."""
    # A private loop: asyncio.run would leave the main thread without a current loop, which
    # breaks Pulumi mocks used later in the same process (they call get_event_loop()).
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(rpc.serialize_properties(props, {}))
    finally:
        loop.close()


def from_struct(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Deserialize like the engine/SDK does."""
    return dict(rpc.deserialize_properties(struct, keep_unknowns=True))


class ProviderHost:
    """A `python -u -m pulumi.dynamic` subprocess and a gRPC stub on it."""

    def __init__(
        self,
        cwd: Path,
        env: dict[str, str] | None = None,
        argv: list[str] | None = None,
        full_env: dict[str, str] | None = None,
    ) -> None:
        """Start the host in `cwd`: by default this interpreter's `-u -m pulumi.dynamic`; `argv`
        and `full_env` (the whole environment) when a launcher decides them as the CLI would."""
        # The engine starts the host in the project folder, where the installed project is
        # importable; here the project is often a tmp folder, so the repository goes on the
        # host's path (the test providers are pickled by reference to tests.provider.faults).
        path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
        self.process = subprocess.Popen(
            argv or [sys.executable, "-u", "-m", "pulumi.dynamic"],
            cwd=cwd,
            env=(
                full_env
                if full_env is not None
                else {**os.environ, "PYTHONPATH": path, **(env or {})}
            ),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert self.process.stdout is not None
        port = self.process.stdout.readline().decode().strip()
        if not port.isdigit():
            err = self.process.stderr.read().decode() if self.process.stderr else ""
            raise RuntimeError(f"provider host did not print a port: {port!r} {err}")
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = provider_pb2_grpc.ResourceProviderStub(self.channel)

    def close(self) -> None:
        """Stop the host we started."""
        self.channel.close()
        self.process.terminate()
        self.process.wait(timeout=10)

    def configure(self, config: dict[str, str]) -> None:
        """Send the stack configuration (namespaced keys), as the engine does once."""
        self.stub.Configure(
            provider_pb2.ConfigureRequest(variables=config, args=to_struct(dict(config)))
        )

    def check(self, urn: str, olds: dict[str, Any], news: dict[str, Any]) -> dict[str, Any]:
        """Check; raise on failures."""
        resp = self.stub.Check(
            provider_pb2.CheckRequest(urn=urn, olds=to_struct(olds), news=to_struct(news))
        )
        if resp.failures:
            raise ValueError([(f.property, f.reason) for f in resp.failures])
        return from_struct(resp.inputs)

    def diff(
        self, urn: str, id_: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> provider_pb2.DiffResponse:
        """Diff."""
        return self.stub.Diff(
            provider_pb2.DiffRequest(urn=urn, id=id_, olds=to_struct(olds), news=to_struct(news))
        )

    def create(self, urn: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Create → (id, outputs)."""
        resp = self.stub.Create(provider_pb2.CreateRequest(urn=urn, properties=to_struct(props)))
        return resp.id, from_struct(resp.properties)

    def update(
        self, urn: str, id_: str, olds: dict[str, Any], news: dict[str, Any]
    ) -> dict[str, Any]:
        """Update → outputs."""
        resp = self.stub.Update(
            provider_pb2.UpdateRequest(urn=urn, id=id_, olds=to_struct(olds), news=to_struct(news))
        )
        return from_struct(resp.properties)

    def read(self, urn: str, id_: str, props: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """Read → (id, outputs); id '' when gone."""
        resp = self.stub.Read(
            provider_pb2.ReadRequest(urn=urn, id=id_, properties=to_struct(props))
        )
        return resp.id, from_struct(resp.properties)

    def delete(self, urn: str, id_: str, props: dict[str, Any]) -> None:
        """Delete."""
        self.stub.Delete(provider_pb2.DeleteRequest(urn=urn, id=id_, properties=to_struct(props)))


@dataclass
class State:
    """One resource in the stack state."""

    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Step:
    """What the engine did for a resource in one `up`."""

    op: str
    replaces: list[str] = field(default_factory=list)


class Stack:
    """The engine's part: state keyed by resource name, up/refresh/destroy like `pulumi`."""

    def __init__(
        self,
        host: ProviderHost,
        project: str = "proj",
        stack: str = "test",
        providers: dict[str, str] | None = None,
    ) -> None:
        self.host = host
        self.providers = PROVIDERS if providers is None else providers
        self.prefix = f"urn:pulumi:{stack}::{project}::"
        self.state: dict[str, State] = {}
        self.types: dict[str, str] = {}

    def urn(self, name: str) -> str:
        """URN of a resource."""
        return f"{self.prefix}{self.types[name]}::{name}"

    def up(self, type_: str, name: str, inputs: dict[str, Any]) -> Step:
        """Register one resource: create, update, replace or nothing."""
        self.types[name] = type_
        news = {**inputs, PROVIDER_KEY: self.providers[type_]}
        old = self.state.get(name)
        checked = self.host.check(self.urn(name), old.inputs if old else {}, news)
        if old is None:
            id_, outs = self.host.create(self.urn(name), checked)
            self.state[name] = State(id_, checked, outs)
            return Step("create")
        diff = self.host.diff(self.urn(name), old.id, old.outputs, checked)
        if diff.changes != provider_pb2.DiffResponse.DIFF_SOME:
            return Step("same")
        if diff.replaces:
            assert not diff.deleteBeforeReplace
            id_, outs = self.host.create(self.urn(name), checked)
            self.host.delete(self.urn(name), old.id, old.outputs)
            self.state[name] = State(id_, checked, outs)
            return Step("replace", list(diff.replaces))
        outs = self.host.update(self.urn(name), old.id, old.outputs, checked)
        self.state[name] = State(old.id, checked, outs)
        return Step("update")

    def preview_diff(self, type_: str, name: str, inputs: dict[str, Any]) -> Any:
        """Check + diff only (what `pulumi preview` does)."""
        old = self.state[name]
        news = {**inputs, PROVIDER_KEY: self.providers[type_]}
        checked = self.host.check(self.urn(name), old.inputs, news)
        return self.host.diff(self.urn(name), old.id, old.outputs, checked)

    def refresh(self, name: str) -> State | None:
        """Read the live state; drop the resource when gone."""
        old = self.state[name]
        id_, outs = self.host.read(self.urn(name), old.id, old.outputs)
        if not id_:
            del self.state[name]
            return None
        self.state[name] = State(id_, old.inputs, outs)
        return self.state[name]

    def destroy(self, name: str) -> None:
        """Delete one resource."""
        old = self.state.pop(name)
        self.host.delete(self.urn(name), old.id, old.outputs)
