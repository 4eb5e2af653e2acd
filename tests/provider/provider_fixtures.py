"""Test helpers: a small Pulumi project with pipelines in a tmp folder, and the inputs the
Pipelines component would give the dynamic resources for them."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.components.pipelines import EndpointPlacement, endpoint_args, schedule_args
from infra.definitions.hashing import pipeline_digest
from infra.definitions.loader import LoadedPipeline, load_definitions
from infra.provider.port import Owner, WorkspaceRef
from infra.provider.resources import WorkspaceArgs, endpoint_props, schedule_props

PIPELINE = """\
name: demo
description: Demo pipeline
experiment: demo-exp
compute: cpu-cluster
parameters:
  epochs: {type: int, default: 3}
  rate: {type: float, default: 0.5}
steps:
  - name: prep
    kind: python
    code: steps/prep
    script: prep.py
    args: [--epochs, '${{parameters.epochs}}', --n, 3, --out, '${{outputs.data}}']
    outputs: [data]
  - name: train
    kind: r
    code: steps/train
    script: train.R
    args: [--data, '${{steps.prep.outputs.data}}', --model, '${{outputs.model}}']
    outputs: [model]
  - name: report
    kind: command
    code: steps/report
    command: [bash, report.sh]
    args: ['${{steps.train.outputs.model}}', --rate, '${{parameters.rate}}']
schedules:
  - name: nightly
    cron: '30 2 * * *'
    parameters: {epochs: 5}
"""

FILES = {
    "steps/prep/prep.py": "print('prep')\n",
    "steps/train/train.R": "cat('train\\n')\n",
    "steps/report/report.sh": "echo report\n",
}
WORKSPACE = WorkspaceRef("00000000-0000-0000-0000-000000000000", "rg-test", "mlw-test")
STORE = ".amlpipe/store.sqlite"
IMAGE_V1 = "acrtest.azurecr.io/training:ctx-aaaaaaaaaaaaaaaaaaaa"
IMAGE_V2 = "acrtest.azurecr.io/training:ctx-bbbbbbbbbbbbbbbbbbbb"
OWNER = Owner("proj", "test")
"""The project and stack of the default :class:`tests.provider.grpc_host.Stack`."""


def placement(root: Path, owner: Owner = OWNER, retention: int = 2) -> EndpointPlacement:
    """Where the test stack publishes."""
    workspace = WorkspaceArgs(
        WORKSPACE.subscription_id, WORKSPACE.resource_group, WORKSPACE.workspace_name
    )
    return EndpointPlacement(workspace, owner, root, retention)


@dataclass
class Project:
    """A tmp Pulumi project holding pipeline folders."""

    root: Path

    def write_pipeline(self, name: str = "demo", yaml_text: str = PIPELINE) -> Path:
        """Write `pipeline_defs/<name>/` with the default step files."""
        folder = self.root / "pipeline_defs" / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "pipeline.yaml").write_text(textwrap.dedent(yaml_text).replace("demo", name, 1))
        for rel, text in FILES.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        return folder

    def write(self, rel: str, text: str) -> None:
        """Change one file."""
        (self.root / rel).write_text(text)

    def load(self, name: str = "demo") -> LoadedPipeline:
        """Load and validate one pipeline."""
        loaded = load_definitions([self.root / "pipeline_defs" / name], self.root)
        return loaded.raise_if_invalid()[0]

    def endpoint_inputs(
        self,
        name: str = "demo",
        image: str = IMAGE_V1,
        retention: int = 2,
        owner: Owner = OWNER,
        **extra: Any,
    ) -> dict[str, Any]:
        """Inputs of the PipelineEndpoint for a pipeline, built as the component builds them."""
        loaded = self.load(name)
        images = {"training": image}
        args = endpoint_args(
            loaded,
            placement(self.root, owner, retention),
            images=images,
            content_hash=pipeline_digest(loaded, images).digest,
            registry_identities={},
        )
        return {**endpoint_props(args), **extra}

    def schedule_inputs(
        self,
        endpoint_id: str,
        name: str = "demo",
        enabled: bool = True,
        owner: Owner = OWNER,
        **extra: Any,
    ) -> dict[str, Any]:
        """Inputs of the PipelineSchedule for the first schedule of a pipeline."""
        loaded = self.load(name)
        args = schedule_args(
            loaded.spec, loaded.spec.schedules[0], placement(self.root, owner), endpoint_id, enabled
        )
        return {**schedule_props(args), **extra}
