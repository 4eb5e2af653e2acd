"""The engine's part for a whole program: the resources a mocks run of the real program registers
(tests/program/mock_program.py), deployed in the order of the dependency graph it registered.

What is real and what stands in (tests name this in their docstrings too):

- **Real**: the program (run under the recording mocks, per stack config, in a copy of the
  project); every dynamic resource (`pulumi-python:dynamic/...`: v1 `PipelineEndpoint` and
  `PipelineSchedule`, v2 `PipelineComponentV2` and `DefaultDeploymentV2`) through the real
  provider host (`python -u -m pulumi.dynamic`, gRPC), with the pickled provider the program
  registered and azure-ai-ml's own operations inside the host; the v1 local backend (its store).
- **Stand-in for azure-native** (no provider binary offline): the Azure ML workspace children the
  program registers (`EnvironmentVersion`, `BatchEndpoint`, `Schedule`; each version's
  deployment is the dynamic `BatchDeploymentV2`, through the host) are written as azure-native
  writes them: an ARM `PUT {location, tags, properties}` of the registered
  inputs at the resource's ARM id on create and update, a `DELETE` on delete unless the program
  set `retain_on_delete`. A change of a `replace_on_changes` path or of the ARM id replaces it.
  They go to the same loopback fake ARM service azure-ai-ml talks to, so one request log orders
  both. The diff is input equality (minus `ignore_changes`); azure-native's own normalisation
  and defaults are not modelled.
- **Outside every service here**: resource group, storage, key vault, registry, identity, role
  assignments, workspace, compute and the docker image: kept in state with the mocks' outputs,
  no writes.

Engine semantics copied from Pulumi's: resources go in a topological order of their registered
dependencies (the tie-break is a parameter, so tests can try an adversarial order); check, then
diff against the old outputs, then create/update, or create-before-delete on a replacement; the
old halves of replacements and the resources the program no longer registers are deleted at the
end, dependents first; a failed operation stops the `up` and keeps the state of what succeeded.
A resource's outputs reach its dependents through the values the mocks run answered: each mock
output value is replaced by the real one before the dependent is checked. In a preview, an input
whose registered property dependencies include a resource being created or replaced is unknown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import requests
from pulumi.runtime import rpc
from pulumi.runtime.proto import provider_pb2

from tests.azureml_v2.loopback import LoopbackArm
from tests.program.mock_program import Registration
from tests.provider.grpc_host import ProviderHost

REPO_ROOT = Path(__file__).resolve().parents[2]
HARNESS = REPO_ROOT / "tests" / "program" / "mock_program.py"
DYNAMIC = "pulumi-python:dynamic/"
ML = "azure-native:machinelearningservices:"
ARM_WRITTEN = frozenset({f"{ML}EnvironmentVersion", f"{ML}BatchEndpoint", f"{ML}Schedule"})
"""azure-native types the stand-in writes to the fake ARM service."""
ARM_BODY_KEYS = ("location", "tags", "properties", "kind", "identity", "sku")
API_VERSION = "2024-10-01"


def copy_project(target: Path) -> Path:
    """A copy of the project (Pulumi.yaml, program, definitions, image context) to change freely;
    the `infra` package is imported from the repository."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("Pulumi.yaml", "__main__.py"):
        shutil.copy(REPO_ROOT / name, target / name)
    for name in ("pipeline_defs", "docker"):
        shutil.copytree(REPO_ROOT / name, target / name)
    return target


@dataclass
class ProgramRun:
    """One mocks run of the program: registrations in registration order, exports."""

    stack: str
    registrations: list[Registration]
    exports: dict[str, Any]

    def custom(self) -> list[Registration]:
        """The custom resources (what providers manage)."""
        return [r for r in self.registrations if r.custom]

    def of_type(self, typ: str) -> list[Registration]:
        """Registrations of one type."""
        return [r for r in self.registrations if r.type == typ]


def run_program(project: Path, stack: str, config_text: str) -> ProgramRun:
    """Run the program of `project` for stack `stack` with this stack file text, as the language
    host would (program folder = project root), under the recording mocks."""
    stack_file = project / f"Pulumi.{stack}.yaml"
    stack_file.write_text(config_text, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    done = subprocess.run(
        [sys.executable, "-u", str(HARNESS), "--program", ".", str(stack_file)],
        cwd=project,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    return ProgramRun(
        stack, [Registration(**r) for r in record["registrations"]], record["exports"]
    )


@dataclass
class Resource:
    """One resource in the stack state."""

    registration: Registration
    id: str
    inputs: dict[str, Any]
    outputs: dict[str, Any]


@dataclass
class Op:
    """What the engine did (or, in a preview, would do) to one resource."""

    urn: str
    op: str
    """create | update | replace | same | delete | delete-replaced | failed"""
    replaces: list[str] = field(default_factory=list)


class EngineError(RuntimeError):
    """An operation failed; the `up` stopped there."""

    def __init__(self, urn: str, op: str, cause: BaseException) -> None:
        super().__init__(f"{op} of {urn} failed: {cause}")
        self.urn, self.op = urn, op


Priority = Callable[[Registration], Any]


def _replace_values(value: Any, mapping: dict[str, str]) -> Any:
    if isinstance(value, str):
        return mapping.get(value, value)
    if isinstance(value, dict):
        return {k: _replace_values(v, mapping) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_values(v, mapping) for v in value]
    return value


def _without(props: dict[str, Any], paths: Iterable[str]) -> dict[str, Any]:
    out = json.loads(json.dumps(props, default=str))
    for path in paths:
        parts = path.split(".")
        node = out
        for part in parts[:-1]:
            node = node.get(part, {}) if isinstance(node, dict) else {}
        if isinstance(node, dict):
            node.pop(parts[-1], None)
    return out


def topological(regs: list[Registration], priority: Priority | None = None) -> list[Registration]:
    """Registrations ordered so every resource follows what it depends on (dependencies and a
    custom parent); among the ready ones, the lowest `priority` first (default: registration
    order)."""
    by_urn = {r.urn: r for r in regs}
    index = {r.urn: i for i, r in enumerate(regs)}
    deps = {
        r.urn: {d for d in [*r.dependencies, r.parent] if d in by_urn and d != r.urn} for r in regs
    }
    done: set[str] = set()
    order: list[Registration] = []
    key = priority or (lambda r: 0)
    while len(order) < len(regs):
        ready = [r for r in regs if r.urn not in done and deps[r.urn] <= done]
        assert ready, "dependency cycle"
        chosen = min(ready, key=lambda r: (key(r), index[r.urn]))
        order.append(chosen)
        done.add(chosen.urn)
    return order


class Engine:
    """A stack's state and the operations of `pulumi preview/up/refresh/destroy` on it."""

    def __init__(self, host: ProviderHost, arm: LoopbackArm) -> None:
        self.host = host
        self.arm = arm
        self.state: dict[str, Resource] = {}
        self.log: list[Op] = []
        self.after_op: list[Callable[[Op], None]] = []
        """Called after each operation that reached a provider (v1 writes are observed here)."""

    # -- the azure-native stand-in -------------------------------------------------------------

    def _arm(self, method: str, arm_id: str, body: dict[str, Any] | None = None) -> None:
        response = requests.request(
            method,
            f"{self.arm.base_url}{arm_id}?api-version={API_VERSION}",
            json=body,
            headers={"Authorization": f"Bearer {self.arm.token}"},
            verify=str(self.arm.ca_bundle),
            timeout=30,
        )
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {arm_id}: {response.status_code} {response.text}")

    # -- one resource ---------------------------------------------------------------------------

    def _resolved(self, reg: Registration) -> dict[str, Any]:
        """The registered inputs with each dependency's mock outputs replaced by the real ones."""
        mapping: dict[str, str] = {}
        for dep in reg.dependencies:
            done = self.state.get(dep)
            if done is None:
                continue
            mock = {**done.registration.outputs, "id": done.registration.id or ""}
            real = {**done.outputs, "id": done.id}
            for key, value in mock.items():
                found = real.get(key)
                if isinstance(value, str) and value and isinstance(found, str) and found != value:
                    mapping[value] = found
        return _replace_values(reg.inputs, mapping)

    def _op(self, op: Op) -> Op:
        self.log.append(op)
        for hook in self.after_op:
            hook(op)
        return op

    def _create(self, reg: Registration, inputs: dict[str, Any]) -> Resource:
        if reg.type.startswith(DYNAMIC):
            checked = self.host.check(reg.urn, {}, inputs)
            id_, outs = self.host.create(reg.urn, checked)
            return Resource(reg, id_, checked, outs)
        if reg.type in ARM_WRITTEN:
            assert reg.id
            self._arm("PUT", reg.id, {k: inputs[k] for k in ARM_BODY_KEYS if k in inputs})
        return Resource(reg, reg.id or "", inputs, {**inputs, **_computed(reg)})

    def _delete(self, res: Resource) -> None:
        reg = res.registration
        if reg.type.startswith(DYNAMIC):
            self.host.delete(reg.urn, res.id, res.outputs)
        elif reg.type in ARM_WRITTEN and not reg.retain_on_delete:
            self._arm("DELETE", res.id)

    def _diff(self, reg: Registration, old: Resource, inputs: dict[str, Any]) -> tuple[str, list]:
        """('same' | 'update' | 'replace', replaced keys) and the checked inputs in `inputs`."""
        if reg.type.startswith(DYNAMIC):
            diff = self.host.diff(reg.urn, old.id, old.outputs, inputs)
            if diff.changes != provider_pb2.DiffResponse.DIFF_SOME:
                return "same", []
            assert not diff.deleteBeforeReplace
            return ("replace" if diff.replaces else "update"), list(diff.replaces)
        if reg.id != old.registration.id:
            return "replace", ["id"]
        olds = _without(old.inputs, reg.ignore_changes)
        news = _without(inputs, reg.ignore_changes)
        if olds == news:
            return "same", []
        changed = sorted(k for k in olds.keys() | news.keys() if olds.get(k) != news.get(k))
        replaced = [p for p in reg.replace_on_changes if p.split(".")[0] in changed]
        return ("replace" if replaced else "update"), replaced

    def _step(self, reg: Registration, pending: list[Resource]) -> Op:
        inputs = self._resolved(reg)
        old = self.state.get(reg.urn)
        if old is None:
            self.state[reg.urn] = self._create(reg, inputs)
            return self._op(Op(reg.urn, "create"))
        if reg.type.startswith(DYNAMIC):
            inputs = self.host.check(reg.urn, old.inputs, inputs)
        kind, replaces = self._diff(reg, old, inputs)
        if kind == "same":
            self.state[reg.urn] = Resource(reg, old.id, old.inputs, old.outputs)
            return Op(reg.urn, "same")
        if kind == "replace":
            self.state[reg.urn] = self._create(reg, inputs)
            pending.append(old)
            return self._op(Op(reg.urn, "replace", replaces))
        if reg.type.startswith(DYNAMIC):
            outs = self.host.update(reg.urn, old.id, old.outputs, inputs)
            self.state[reg.urn] = Resource(reg, old.id, inputs, outs)
        else:
            if reg.type in ARM_WRITTEN:
                assert reg.id
                self._arm("PUT", reg.id, {k: inputs[k] for k in ARM_BODY_KEYS if k in inputs})
            self.state[reg.urn] = Resource(reg, old.id, inputs, {**inputs, **_computed(reg)})
        return self._op(Op(reg.urn, "update"))

    # -- whole operations -----------------------------------------------------------------------

    def up(self, run: ProgramRun, priority: Priority | None = None) -> list[Op]:
        """`pulumi up`: every registered resource in graph order, then the deletes."""
        start = len(self.log)
        pending: list[Resource] = []
        for reg in topological(run.custom(), priority):
            try:
                op = self._step(reg, pending)
            except (grpc.RpcError, RuntimeError) as exc:
                self.log.append(Op(reg.urn, "failed"))
                raise EngineError(reg.urn, "up", exc) from exc
            if op.op == "same":
                self.log.append(op)
        registered = {r.urn for r in run.custom()}
        gone = [res for urn, res in self.state.items() if urn not in registered]
        # Dependents first: the reverse of a graph order of the old state.
        for reg in reversed(topological([r.registration for r in gone])):
            res = self.state[reg.urn]
            self._delete(res)
            del self.state[reg.urn]
            self._op(Op(reg.urn, "delete"))
        for old in reversed(pending):
            self._delete(old)
            self._op(Op(old.registration.urn, "delete-replaced"))
        return self.log[start:]

    def preview(self, run: ProgramRun) -> dict[str, tuple[str, Any]]:
        """`pulumi preview`: Check (and Diff for existing resources) only, inputs that depend on
        resources being created or replaced sent as unknowns. Returns urn -> (op, diff)."""
        unknown_urns: set[str] = set()
        plan: dict[str, tuple[str, Any]] = {}
        for reg in topological(run.custom()):
            inputs = self._resolved(reg)
            for key, deps in reg.property_dependencies.items():
                if set(deps) & unknown_urns:
                    inputs[key] = rpc.UNKNOWN
            old = self.state.get(reg.urn)
            if reg.type.startswith(DYNAMIC):
                checked = self.host.check(reg.urn, old.inputs if old else {}, inputs)
                if old is None:
                    plan[reg.urn] = ("create", None)
                    unknown_urns.add(reg.urn)
                    continue
                diff = self.host.diff(reg.urn, old.id, old.outputs, checked)
                some = diff.changes == provider_pb2.DiffResponse.DIFF_SOME
                kind = ("replace" if diff.replaces else "update") if some else "same"
                plan[reg.urn] = (kind, diff)
            else:
                kind = "create" if old is None else self._diff(reg, old, inputs)[0]
                plan[reg.urn] = (kind, None)
            if kind in ("create", "replace", "update"):
                unknown_urns.add(reg.urn)
        return plan

    def refresh(self) -> dict[str, str]:
        """`pulumi refresh` of the dynamic resources: Read each; a resource read as gone leaves
        the state. Returns urn -> 'same' | 'changed' | 'gone'."""
        result: dict[str, str] = {}
        for urn, res in list(self.state.items()):
            if not res.registration.type.startswith(DYNAMIC):
                continue
            id_, outs = self.host.read(urn, res.id, res.outputs)
            if not id_:
                del self.state[urn]
                result[urn] = "gone"
                continue
            result[urn] = "same" if outs == res.outputs else "changed"
            self.state[urn] = Resource(res.registration, id_, res.inputs, outs)
        return result

    def destroy(self) -> list[Op]:
        """`pulumi destroy`: every resource, dependents first."""
        start = len(self.log)
        for reg in reversed(topological([r.registration for r in self.state.values()])):
            self._delete(self.state.pop(reg.urn))
            self._op(Op(reg.urn, "delete"))
        return self.log[start:]


def _computed(reg: Registration) -> dict[str, Any]:
    """What the mocks answered beyond the inputs (the stand-in's computed outputs)."""
    return {k: v for k, v in reg.outputs.items() if reg.inputs.get(k) != v}
