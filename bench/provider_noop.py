"""Dynamic provider: cost of a no-op deploy and the work of a one-script change, for 1, 10 and 100
pipelines, through the real provider host (`python -m pulumi.dynamic`) on the local backend.

For each size it prints, side by side in one run:
- inputs: time to compute every endpoint's inputs (what the program does at each preview: load,
  hash code, summarize);
- no-op: check + diff time over gRPC for all endpoints, of which the part this Python engine
  stand-in spends serializing requests (the real engine does that in Go), and the provider's own
  `diff` called in-process on the same dicts; and the backend calls made (expected 0);
- one-script change: how many endpoints the diff marks as changed (expected 1), and the backend
  calls of the update (expected 1 publish, 1 add-default; nothing for the other pipelines).

Prints figures; asserts nothing.
Usage: `.venv/bin/python -m bench.provider_noop [--sizes 1,10,100]` from the repository root
(the test helpers import as `tests.provider.*`).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from pulumi.runtime.proto import provider_pb2

from infra.provider.props import PROVIDER_KEY
from infra.provider.provider import PipelineEndpointProvider
from tests.provider.faults import PLAN_ENV, FaultPlan
from tests.provider.grpc_host import (
    ENDPOINT_TYPE,
    FAULTY_PROVIDERS,
    ProviderHost,
    Stack,
    to_struct,
)
from tests.provider.provider_fixtures import STORE, Project


def _names(count: int) -> list[str]:
    return [f"p{i:03d}" for i in range(count)]


def _inputs(project: Project, names: list[str]) -> tuple[dict[str, dict[str, object]], float]:
    start = time.perf_counter()
    inputs = {name: project.endpoint_inputs(name) for name in names}
    return inputs, time.perf_counter() - start


def _diff_all(stack: Stack, inputs: dict[str, dict[str, object]]) -> tuple[list[str], float]:
    """Check + diff every endpoint, as `pulumi preview` does; return the changed ones."""
    changed: list[str] = []
    start = time.perf_counter()
    for name, props in inputs.items():
        old = stack.state[name]
        news = {**props, PROVIDER_KEY: FAULTY_PROVIDERS[ENDPOINT_TYPE]}
        checked = stack.host.check(stack.urn(name), old.inputs, news)
        diff = stack.host.diff(stack.urn(name), old.id, old.outputs, checked)
        if diff.changes == provider_pb2.DiffResponse.DIFF_SOME:
            changed.append(name)
    return changed, time.perf_counter() - start


def _diff_in_process(stack: Stack, inputs: dict[str, dict[str, object]]) -> float:
    """The provider's diff alone, on the same olds/news, without the host."""
    provider = PipelineEndpointProvider()
    start = time.perf_counter()
    for name, props in inputs.items():
        provider.diff(stack.state[name].id, stack.state[name].outputs, dict(props))
    return time.perf_counter() - start


def _harness_serialization(stack: Stack, inputs: dict[str, dict[str, object]]) -> float:
    """What this Python stand-in for the engine spends serializing requests (the real engine
    does this in Go): the same payloads as `_diff_all` sends."""
    start = time.perf_counter()
    for name, props in inputs.items():
        news = {**props, PROVIDER_KEY: FAULTY_PROVIDERS[ENDPOINT_TYPE]}
        to_struct(stack.state[name].inputs)
        to_struct(news)
        to_struct(stack.state[name].outputs)
        to_struct(news)
    return time.perf_counter() - start


def measure(count: int) -> dict[str, object]:
    """One size: create, no-op, one-script change."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "Pulumi.yaml").write_text("name: bench\nruntime: python\n")
        project = Project(root)
        names = _names(count)
        for name in names:
            project.write_pipeline(name)
        plan = FaultPlan(Path(tmp) / "faults.sqlite")  # counts the backend calls
        host = ProviderHost(root, env={PLAN_ENV: str(plan.path)})
        try:
            host.configure(
                {"azureml-pipelines:backend": "local", "azureml-pipelines:localStorePath": STORE}
            )
            stack = Stack(host, providers=FAULTY_PROVIDERS)
            inputs, inputs_s = _inputs(project, names)
            for name in names:
                stack.up(ENDPOINT_TYPE, name, inputs[name])
            plan.reset_counts()
            inputs, inputs_s = _inputs(project, names)
            unchanged, noop_s = _diff_all(stack, inputs)
            in_process_s = _diff_in_process(stack, inputs)
            harness_s = _harness_serialization(stack, inputs)
            noop = plan.counts()

            project.write(f"pipeline_defs/{names[-1]}/steps/prep/prep.py", "print('changed')\n")
            inputs, _ = _inputs(project, names)
            plan.reset_counts()
            changed, change_diff_s = _diff_all(stack, inputs)
            for name in changed:
                stack.up(ENDPOINT_TYPE, name, inputs[name])
            change = plan.counts()
        finally:
            host.close()
    return {
        "pipelines": count,
        "inputs_ms": inputs_s * 1000,
        "noop_diff_ms": noop_s * 1000,
        "in_process_ms": in_process_s * 1000,
        "harness_ms": harness_s * 1000,
        "noop_changed": len(unchanged),
        "noop_reads": noop.total_reads,
        "noop_writes": noop.total_writes,
        "change_diff_ms": change_diff_s * 1000,
        "change_changed": len(changed),
        "change_publishes": change.writes.get("publish_pipeline", 0),
        "change_writes": change.total_writes,
        "change_write_ops": dict(sorted(change.writes.items())),
    }


def main() -> None:
    """Print one line per size, then ratios against the smallest size."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,10,100")
    sizes = [int(s) for s in parser.parse_args().sizes.split(",")]
    rows = [measure(n) for n in sizes]
    header = (
        f"{'pipelines':>9} {'inputs ms':>10} {'no-op diff ms':>14} {'ms/pipeline':>12} "
        f"{'of which harness ms':>20} {'diff only ms':>13} "
        f"{'changed':>8} {'reads':>6} {'writes':>7} | {'1-script: changed':>18} "
        f"{'publishes':>10} {'writes':>7}  write ops"
    )
    print(header)
    for r in rows:
        per = float(r["noop_diff_ms"]) / int(r["pipelines"])  # type: ignore[arg-type]
        print(
            f"{r['pipelines']:>9} {r['inputs_ms']:>10.1f} {r['noop_diff_ms']:>14.1f} {per:>12.2f} "
            f"{r['harness_ms']:>20.1f} {r['in_process_ms']:>13.1f} "
            f"{r['noop_changed']:>8} {r['noop_reads']:>6} {r['noop_writes']:>7} | "
            f"{r['change_changed']:>18} {r['change_publishes']:>10} {r['change_writes']:>7}  "
            f"{r['change_write_ops']}"
        )
    base = rows[0]
    for r in rows[1:]:
        ratio = float(r["noop_diff_ms"]) / max(float(base["noop_diff_ms"]), 1e-9)  # type: ignore[arg-type]
        scale = int(r["pipelines"]) / int(base["pipelines"])  # type: ignore[call-overload]
        print(
            f"no-op diff time x{ratio:.1f} for x{scale:.0f} pipelines "
            f"({r['pipelines']} vs {base['pipelines']})"
        )


if __name__ == "__main__":
    main()
