"""Step cold start: the sample R + Python step in the prebuilt training image vs the same step in
the bare Debian base image installing its packages when it starts (what the custom image replaces).

Prints medians and their ratio, measured side by side (interleaved) in one run; asserts nothing.
Usage (engine and images from `.ci/docker.sh start` and `amlpipe build`):
  .venv/bin/python bench/cold_start.py [--repeat 3] [--image REF] [--bare-image REF]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import docker
from infra.runner.docker_engine import default_image

REPO_ROOT = Path(__file__).resolve().parents[1]
STEPS = REPO_ROOT / "pipeline_defs" / "churn-train" / "steps"
APT_PACKAGES = "python3 r-base-core r-cran-gbm r-cran-caret r-cran-optparse r-cran-jsonlite"
# The sample's data preparation (Python) and GBM training (R) on a small data set, in one container.
STEP = (
    "python3 /steps/prep/prep.py --rows 600 --seed 1 --test-fraction 0.25 --out /work/data"
    " && cd /steps/train && Rscript train.R --data /work/data --n-trees 30 --out /work/model"
)
INSTALL = (
    "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
    f"apt-get install -y -qq --no-install-recommends {APT_PACKAGES} >/dev/null"
)


def run_once(client: docker.DockerClient, image: str, script: str) -> float:
    """Seconds from `docker run` to exit of a fresh container (fails loudly on a non-zero exit)."""
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        start = time.perf_counter()
        client.containers.run(
            image,
            ["/bin/sh", "-c", script],
            volumes={str(STEPS): {"bind": "/steps", "mode": "ro"}, work: {"bind": "/work"}},
            network_mode="host",
            environment={"TZ": "UTC"},
            remove=True,
        )
        return time.perf_counter() - start


def main() -> None:
    """Interleave the two variants `--repeat` times; print medians and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--image", help="training image (default: built from docker/)")
    parser.add_argument(
        "--bare-image",
        default=os.environ.get("AMLPIPE_BARE_BASE_IMAGE", "local/debian-minbase:bookworm"),
    )
    args = parser.parse_args()
    client = docker.from_env()
    image = args.image or default_image(client, REPO_ROOT / "docker")
    prebuilt: list[float] = []
    bare: list[float] = []
    for index in range(args.repeat):
        prebuilt.append(run_once(client, image, STEP))
        bare.append(run_once(client, args.bare_image, f"{INSTALL} && {STEP}"))
        print(f"  pass {index + 1}: prebuilt {prebuilt[-1]:.1f}s, bare+install {bare[-1]:.1f}s")
    p, b = statistics.median(prebuilt), statistics.median(bare)
    print(f"step cold start, median of {args.repeat} (prep.py + train.R, fresh container each):")
    print(f"  prebuilt image {image}: {p:6.1f} s")
    print(f"  bare base {args.bare_image} + apt install at start: {b:6.1f} s")
    print(f"  ratio bare/prebuilt: {b / p:.1f}x")


if __name__ == "__main__":
    main()
