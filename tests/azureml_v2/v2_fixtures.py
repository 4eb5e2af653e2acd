"""Constants shared by the v2 wing's tests."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_REF = "amlpipeacr.azurecr.io/training:ctx-0123@sha256:" + "ab" * 32
IMAGES = {"training": IMAGE_REF}

# A definition with a Python step feeding an R step through an output (dedented when written).
TWO_STEPS = """\
    name: demo
    experiment: demo
    compute: cpu-cluster
    steps:
      - name: prep
        kind: python
        code: steps/prep
        script: prep.py
        args: ["${{outputs.data}}"]
        outputs: [data]
      - name: train
        kind: r
        code: steps/train
        script: train.R
        args: ["${{steps.prep.outputs.data}}"]
    """
