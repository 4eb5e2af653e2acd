"""The training image's Python packages come from the repository's pin set: every package the
image and the repository's environment share has the same version in docker/constraints.txt and
constraints.txt, and every image requirement is pinned there."""

from __future__ import annotations

import re
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements/constraints file, names normalized (PEP 503)."""
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            found[re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()] = version
    return found


def test_image_pins_are_the_repository_pins_where_both_have_the_package() -> None:
    image, repo = pins(REPO_ROOT / "docker/constraints.txt"), pins(REPO_ROOT / "constraints.txt")
    shared = image.keys() & repo.keys()
    assert len(shared) > 60  # azureml-core and the dataset runtime pull in most of them
    assert {name: image[name] for name in shared} == {name: repo[name] for name in shared}
    assert image.keys() - repo.keys() == {"fusepy", "pip"}  # image-only, explained in the file


def test_every_image_requirement_is_pinned_by_the_constraints() -> None:
    requirements = pins(REPO_ROOT / "docker/requirements.txt")
    constraints = pins(REPO_ROOT / "docker/constraints.txt")
    assert {"azureml-core", "azureml-dataset-runtime"} <= requirements.keys()
    assert {name: constraints[name] for name in requirements} == requirements
