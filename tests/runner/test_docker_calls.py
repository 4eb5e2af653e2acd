"""The engine round trips of a Docker `amlpipe run`, recorded on the real engine.

Every request the docker SDK sends is recorded by wrapping the real client's `request` (the
requests session under the SDK's low-level client): a run talks to the engine in one short,
fixed sequence: version, image, create, a wait registered before the start, start; the engine
removes the container as it ends (AutoRemove, as `docker run --rm`). No inspect after create, no
ping, no status polling while the step runs, no DELETE, whatever the step's length.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from infra.definitions.loader import load_definitions
from infra.plaintext import PlainConsole
from infra.runner.run import RunOptions, run_pipeline

pytestmark = pytest.mark.docker

PIPELINE = """\
name: demo
experiment: demo
compute: cpu-cluster
steps:
  - name: only
    kind: command
    code: code
    command: [sh, -c, 'echo started; sleep {seconds}; echo done; exit {code}']
"""


def record_requests(monkeypatch: pytest.MonkeyPatch, calls: list[str]) -> None:
    """Record every HTTP request of the SDK's low-level client as `METHOD path` (API version
    prefix, query and container ids left out); the requests still go to the real engine."""
    from docker.api.client import APIClient

    send = APIClient.request

    def request(self: APIClient, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        path = re.sub(r"^/v[0-9.]+(?=/)", "", url.split("localhost", 1)[-1].split("?")[0])
        calls.append(f"{method} {re.sub('[0-9a-f]{64}', '<id>', path)}")
        return send(self, method, url, *args, **kwargs)

    monkeypatch.setattr(APIClient, "request", request)


def run_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, image: str, seconds: float, code: int
) -> tuple[Any, list[str]]:
    folder = tmp_path / "defs" / "demo"
    (folder / "code").mkdir(parents=True)
    (folder / "pipeline.yaml").write_text(
        textwrap.dedent(PIPELINE.format(seconds=seconds, code=code)), encoding="utf-8"
    )
    loaded = load_definitions([tmp_path / "defs"]).by_name("demo")
    options = RunOptions(executor="docker", image=image, run_dir=tmp_path / "run")
    calls: list[str] = []
    with monkeypatch.context() as patch:
        record_requests(patch, calls)
        summary = run_pipeline(loaded, options, PlainConsole())
    return summary, calls


EXPECTED = [
    "GET /version",
    "GET /images/{image}/json",
    "POST /containers/create",
    "POST /containers/<id>/wait",
    "POST /containers/<id>/start",
]


@pytest.mark.parametrize(("seconds", "code"), [(0, 0), (0, 7), (1.5, 3)])
def test_a_step_costs_one_fixed_sequence_of_engine_calls_however_long_it_runs(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    training_image: str,
    run_containers: Callable[[Path], list[Any]],
    seconds: float,
    code: int,
) -> None:
    summary, calls = run_recorded(tmp_path, monkeypatch, training_image, seconds, code)

    assert calls == [call.format(image=training_image) for call in EXPECTED]
    step = summary.steps["only"]
    assert (step.exit_code, summary.status) == (code, "succeeded" if code == 0 else "failed")
    log = (tmp_path / "run" / step.log).read_text(encoding="utf-8")
    assert log == "started\ndone\n"
    assert run_containers(tmp_path / "run") == []
