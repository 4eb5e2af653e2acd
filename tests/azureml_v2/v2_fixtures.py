"""Constants shared by the v2 wing's tests."""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
IMAGE_REF = "amlpipeacr.azurecr.io/training:ctx-0123@sha256:" + "ab" * 32
IMAGES = {"training": IMAGE_REF}
