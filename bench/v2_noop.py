"""Azure ML v2 publishing work: what a no-op and a one-script change cost, through azure-ai-ml's
real operations against the fake ARM service of the tests (tests/azureml_v2/fake_arm.py).

Prints figures; asserts nothing. Usage: `.venv/bin/python -m bench.v2_noop [--pipelines N]`
(from the repository root, so the tests' fake ARM service imports as `tests.azureml_v2`).

For N copies of the churn-train sample: the program-side plan (names, commands, content-hash
versions; pure, no azure-ai-ml), then the provider-side registration of every pipeline (first
publish), again with nothing changed (no-op), and after one script of one pipeline changed.
Requests are counted (GET vs writes) and timed side by side in one run.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

from infra.definitions.loader import load_definitions
from infra.provider.azureml_v2.plan import plan_pipeline
from infra.provider.azureml_v2.service import V2Service, Workspace
from tests.azureml_v2.fake_arm import FakeArm, FakeCredential

REPO_ROOT = Path(__file__).resolve().parents[1]

IMAGES = {"training": "acr.azurecr.io/training:ctx@sha256:" + "ab" * 32}
ENVIRONMENTS = {"training": "azureml:amlpipe-training:1"}
OWNER = "azureml-pipelines/dev"


def _copies(root: Path, count: int) -> None:
    source = REPO_ROOT / "pipeline_defs" / "churn-train"
    (root / "Pulumi.yaml").write_text("name: bench\n")
    for i in range(count):
        target = root / "pipeline_defs" / f"churn-{i}"
        shutil.copytree(source, target)
        text = (target / "pipeline.yaml").read_text().replace("name: churn-train", f"name: c{i}")
        (target / "pipeline.yaml").write_text(text)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipelines", type=int, default=10)
    count = parser.parse_args().pipelines
    from azure.ai.ml import MLClient

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _copies(root, count)

        def plans() -> list:
            loaded = load_definitions([root / "pipeline_defs"], root).raise_if_invalid()
            return [plan_pipeline(d, IMAGES) for d in loaded]

        arm = FakeArm()
        ws = Workspace("0" * 8, "rg", "ws")
        service = V2Service(
            ws, lambda w: MLClient(FakeCredential(), "0" * 8, "rg", "ws", transport=arm)
        )

        def publish(label: str) -> None:
            started = time.perf_counter()
            planned = plans()
            planned_s = time.perf_counter() - started
            arm.requests.clear()
            started = time.perf_counter()
            created = [c for p in planned for c in service.register(p, ENVIRONMENTS, OWNER).created]
            register_s = time.perf_counter() - started
            writes = len(arm.writes())
            gets = len(arm.requests) - writes
            print(
                f"{label:<20} plan {planned_s * 1000:7.0f} ms  register {register_s * 1000:7.0f} ms"
                f"  GET {gets:4d}  writes {writes:3d}  versions created {len(created)}"
            )

        print(f"{count} pipelines of 3 steps (churn-train copies), fake ARM service")
        publish("first publish")
        publish("no-op")
        script = root / "pipeline_defs" / "churn-0" / "steps" / "train" / "train.R"
        script.write_text(script.read_text() + "\n# changed\n")
        publish("one script changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
