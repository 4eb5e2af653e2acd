"""Where the wall time of a Docker `amlpipe run` goes: a per-phase timeline of a one-step no-op
pipeline next to `docker run --rm` of the same image and command. Prints medians; asserts nothing.

Usage: .venv/bin/python bench/runner_timeline.py [--repeat 5] [--image REF] [--baseline DIR]

Each `amlpipe run` is started through a small harness (`python -P -c`) that marks, with wall-clock
timestamps, when the interpreter is up, when chosen runner functions start and end (wrapped right
after their module is first imported, so lazy imports stay lazy) and every HTTP call the docker
SDK makes to the engine. The engine's own events (create, start, die, destroy) come from
`docker events` for both `amlpipe run` and `docker run --rm`. Times are seconds after the child
was spawned. `--baseline DIR` runs the same for another checkout, interleaved.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.runner_overhead import NOOP, PIPELINE, default_image

# Wrapped in the child: (module, attribute path). Missing ones are skipped (other checkouts).
WRAPPED = [
    ("infra.cli", "main"),
    ("infra.definitions.loader", "load_definitions"),
    ("infra.runner.run", "_prepare"),
    ("infra.runner.run", "make_executor"),
    ("infra.runner.run", "claim_run_dir"),
    ("infra.runner.run", "pipeline_digest"),
    ("infra.runner.run", "Scheduler.run"),
    ("infra.runner.run", "_summarize"),
    ("infra.runner.run", "print_report"),
    ("infra.runner.docker_engine", "connect"),
    ("infra.runner.docker_engine", "_import_docker_sdk"),
    ("infra.runner.docker_engine", "default_image"),
    ("infra.runner.docker_engine", "ensure_image"),
    ("infra.runner.docker_engine", "DockerExecutor.start"),
    ("infra.runner.docker_engine", "DockerExecutor.close"),
    ("infra.runner.executor", "stage_code"),
]

HARNESS = r"""
import atexit, functools, re, importlib.abc, importlib.machinery, json, os, sys, time
MARKS = [("interpreter up", time.time())]
WRAPPED = json.loads(os.environ["TIMELINE_WRAP"])
def mark(label):
    MARKS.append((label, time.time()))
def wrap(owner, attr, label):
    inner = getattr(owner, attr)
    @functools.wraps(inner)
    def timed(*args, **kwargs):
        mark(label + " >")
        try:
            return inner(*args, **kwargs)
        finally:
            mark(label + " <")
    setattr(owner, attr, timed)
def patch(module):
    name = module.__name__
    for target, path in WRAPPED:
        if target != name:
            continue
        *parents, attr = path.split(".")
        owner = module
        for part in parents:
            owner = getattr(owner, part, None)
        if owner is not None and hasattr(owner, attr):
            wrap(owner, attr, path)
    if name == "docker.api.client":
        send = module.APIClient.request
        def request(self, method, url, *args, **kwargs):
            path = url.split("/v1.", 1)[-1].split("/", 1)[-1].split("?")[0]
            path = re.sub("[0-9a-f]{64}", "<id>", path)
            label = f"HTTP {method} /{path}"
            mark(label + " >")
            try:
                return send(self, method, url, *args, **kwargs)
            finally:
                mark(label + " <")
        module.APIClient.request = request
class Finder(importlib.abc.MetaPathFinder):
    names = {t for t, _ in WRAPPED} | {"docker.api.client", "docker", "pydantic", "rich",
                                         "requests", "infra.plaintext"}
    def find_spec(self, name, path, target=None):
        if name not in self.names:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        run = spec.loader.exec_module
        def exec_module(module):
            mark(f"import {name} >")
            run(module)
            mark(f"import {name} <")
            patch(module)
        spec.loader.exec_module = exec_module
        return spec
sys.meta_path.insert(0, Finder())
_exit = os._exit
def fast_exit(code):
    dump()
    _exit(code)
os._exit = fast_exit
@atexit.register
def dump():
    if MARKS[-1][0] == "exit":
        return
    mark("exit")
    with open(os.environ["TIMELINE_OUT"], "w") as out:
        json.dump(MARKS, out)
mark("harness ready")
sys.argv = ["amlpipe", *sys.argv[1:]]
import infra.cli
mark("infra.cli imported")
# The entry point when the checkout has one (it may end the process itself), else main.
entry = getattr(infra.cli, "entry", None)
if entry is not None:
    entry()
sys.exit(infra.cli.main(sys.argv[1:]))
"""


def engine_events(since: float, until: float) -> list[tuple[str, float]]:
    """Container events of the engine between two wall-clock times: (action, time)."""
    out = subprocess.run(
        ["docker", "events", "--since", f"{since:.6f}", "--until", f"{until + 0.05:.6f}",
         "--filter", "type=container", "--format", "{{json .}}"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    events = []
    for line in out.splitlines():
        event = json.loads(line)
        action = event.get("Action") or event.get("status", "")
        if action.split(":")[0] in {"create", "attach", "start", "die", "destroy", "kill"}:
            events.append((f"engine: {action.split(':')[0]}", event["timeNano"] / 1e9))
    return events


def run_once(command: list[str], env: dict[str, str]) -> list[tuple[str, float]]:
    """Spawn, reap, then collect the child's marks and the engine's events (relative times)."""
    spawned = time.time()
    child = subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    reaped = time.time()
    if child.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{child.stderr.decode()}")
    marks: list[tuple[str, float]] = []
    out = env.get("TIMELINE_OUT")
    if out and Path(out).exists():
        marks = [(label, t) for label, t in json.loads(Path(out).read_text())]
        Path(out).unlink()
    marks += engine_events(spawned, reaped)
    marks.append(("reaped by the parent", reaped))
    return sorted(((label, t - spawned) for label, t in marks), key=lambda m: m[1])


def main() -> None:
    """Alternate `docker run --rm` and each checkout's `amlpipe run`; print median timelines."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--image", help="training image (default: built from docker/)")
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    image = args.image or default_image()
    repo = Path(__file__).resolve().parents[1]
    checkouts = {"amlpipe run": repo}
    if args.baseline:
        checkouts["amlpipe run (baseline)"] = args.baseline.resolve()
    samples: dict[str, list[list[tuple[str, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        defs = Path(tmp) / "defs"
        (defs / "noop" / "code").mkdir(parents=True)
        (defs / "noop" / "pipeline.yaml").write_text(PIPELINE)
        base_env = {**os.environ, "PYTHONPYCACHEPREFIX": str(Path(tmp) / "pycache")}
        base_env.pop("PYTHONDONTWRITEBYTECODE", None)
        for index in range(args.repeat + 1):
            runs = {"docker run --rm": (["docker", "run", "--rm", "--network", "host", image,
                                         *NOOP], base_env)}  # fmt: skip
            for label, checkout in checkouts.items():
                run_dir = Path(tmp) / f"run-{index}-{label[-3:]}"
                env = {**base_env, "PYTHONPATH": str(checkout),
                       "TIMELINE_OUT": str(Path(tmp) / "marks.json"),
                       "TIMELINE_WRAP": json.dumps(WRAPPED)}  # fmt: skip
                runs[label] = (
                    [sys.executable, "-P", "-c", HARNESS, "run", "noop", "--defs", str(defs),
                     "--image", image, "--run-dir", str(run_dir)],
                    env,
                )  # fmt: skip
            for label, (command, env) in runs.items():
                timeline = run_once(command, env)
                if index:  # the first round warms caches
                    samples.setdefault(label, []).append(timeline)
    print(f"one-step no-op pipeline, medians of {args.repeat} runs, s after spawn, image {image}")
    for label, timelines in samples.items():
        print(f"\n{label}")
        # Median per mark, in the order of the first run; occurrence numbered when repeated.
        keyed: dict[str, list[float]] = {}
        order: list[str] = []
        for timeline in timelines:
            seen: dict[str, int] = {}
            for mark, t in timeline:
                seen[mark] = seen.get(mark, 0) + 1
                key = mark if seen[mark] == 1 else f"{mark} #{seen[mark]}"
                if key not in keyed:
                    order.append(key)
                keyed.setdefault(key, []).append(t)
        rows = sorted(order, key=lambda k: statistics.median(keyed[k]))
        for key in rows:
            values = keyed[key]
            print(f"  {statistics.median(values):7.3f}  {key}" + (
                f"  (in {len(values)}/{len(timelines)} runs)" if len(values) < len(timelines)
                else ""))  # fmt: skip


if __name__ == "__main__":
    main()
