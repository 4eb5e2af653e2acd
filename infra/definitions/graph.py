"""The DAG of a pipeline: derived from argument references and `after`, ordered, drawn."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from infra.definitions.model import AnyStep, PipelineSpec
from infra.definitions.refs import InputRef


@dataclass(frozen=True)
class Edge:
    """An ordering dependency; `output` names the data passed, None for a plain `after`."""

    upstream: str
    downstream: str
    output: str | None


def edges(spec: PipelineSpec) -> list[Edge]:
    """Every dependency of a validated spec, data edges first, in step order."""
    result: list[Edge] = []
    for step in spec.steps:
        data_from: set[str] = set()
        for token in step.arguments:
            if isinstance(token, InputRef):
                edge = Edge(token.step, step.name, token.output)
                if edge not in result:
                    result.append(edge)
                data_from.add(token.step)
        result += [Edge(u, step.name, None) for u in step.after if u not in data_from]
    return result


def dependencies(steps: Iterable[AnyStep | None]) -> dict[str, set[str]]:
    """For each step, the steps it waits for: those whose outputs it reads, and its `after`.

    The one place the DAG is derived, for validation (which passes the structurally valid steps
    of a document, None for the others) and for everything that runs or draws a valid spec."""
    deps: dict[str, set[str]] = {}
    for step in steps:
        if step is None:
            continue
        upstream = set(step.after)
        upstream.update(t.step for t in step.arguments if isinstance(t, InputRef))
        upstream.discard(step.name)  # reported by validation; not an ordering constraint
        deps.setdefault(step.name, set()).update(upstream)
    return deps


def upstream_of(spec: PipelineSpec) -> dict[str, set[str]]:
    """For each step, the steps it waits for."""
    return dependencies(spec.steps)


def find_cycle(deps: Mapping[str, set[str]]) -> list[str] | None:
    """A dependency cycle as a list of step names (each waits for the previous), or None.

    Iterative depth-first search (an explicit stack, not recursion): a chain of thousands of
    steps must not hit Python's recursion limit."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    for root in sorted(deps):
        if state.get(root) is not None:
            continue
        path: list[str] = [root]
        pending: list[list[str]] = [sorted(u for u in deps[root] if u in deps)]
        state[root] = 1
        while path:
            if not pending[-1]:
                state[path.pop()] = 2
                pending.pop()
                continue
            upstream = pending[-1].pop(0)
            if state.get(upstream) == 1:
                return list(reversed(path[path.index(upstream) :]))
            if state.get(upstream) is None:
                state[upstream] = 1
                path.append(upstream)
                pending.append(sorted(u for u in deps[upstream] if u in deps))
    return None


def topological_order(spec: PipelineSpec) -> list[str]:
    """Steps in an order where each comes after everything it waits for (stable: file order)."""
    deps = upstream_of(spec)
    done: list[str] = []
    remaining = [s.name for s in spec.steps]
    while remaining:
        ready = [n for n in remaining if deps[n] <= set(done)]
        if not ready:
            raise ValueError(f"dependency cycle among {remaining}")
        done += ready
        remaining = [n for n in remaining if n not in ready]
    return done


def to_mermaid(spec: PipelineSpec) -> str:
    """Mermaid flowchart: one node per step (name and kind), data edges labelled with the output."""
    lines = ["flowchart LR"]
    for step in spec.steps:
        lines.append(f'    {step.name}["{step.name}<br/><small>{step.kind}</small>"]')
    for edge in edges(spec):
        arrow = f"-- {edge.output} -->" if edge.output else "-.->"
        lines.append(f"    {edge.upstream} {arrow} {edge.downstream}")
    return "\n".join(lines) + "\n"


def to_dot(spec: PipelineSpec) -> str:
    """Graphviz DOT: same content as :func:`to_mermaid`."""
    lines = [f'digraph "{spec.name}" {{', "    rankdir=LR;", "    node [shape=box];"]
    for step in spec.steps:
        lines.append(f'    "{step.name}" [label="{step.name}\\n({step.kind})"];')
    for edge in edges(spec):
        attrs = f' [label="{edge.output}"]' if edge.output else " [style=dashed]"
        lines.append(f'    "{edge.upstream}" -> "{edge.downstream}"{attrs};')
    lines.append("}")
    return "\n".join(lines) + "\n"
