"""Cold start of a step, three ways, measured side by side in one run (asserts nothing):

1. the prebuilt training image (docker/): nothing to install;
2. the bare Debian base installing the image's system packages as Debian binaries at start (apt:
   Python, R, the r-cran-* libraries, fuse) -- the fastest possible runtime install, but without
   the azureml Python packages (Debian has none);
3. the bare base installing the same Debian binaries plus the image's Python packages with pip
   from PyPI into a venv (docker/requirements.txt with docker/constraints.txt), the way an
   Azure ML environment without a custom image gets its Python packages.

Each fresh container reports two moments: the first line of user code (interpreters started, the
sample's libraries loaded -- Python: the azureml run context where installed; R: gbm, caret,
optparse, jsonlite -- no work done), and the end of the sample step (churn-train's prep.py +
train.R on a small data set). Prints medians and ratios to the prebuilt image.

Usage (engine and images from `.ci/docker.sh start` and `amlpipe build`; pip needs PyPI from a
container: the host CA bundle is mounted for it):
  .venv/bin/python bench/cold_start.py [--repeat 1] [--image REF] [--bare-image REF]
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
DOCKER_DIR = REPO_ROOT / "docker"
HOST_CA = Path(os.environ.get("HOST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt"))
R_LIBRARIES = (
    "suppressPackageStartupMessages({library(gbm); library(caret); library(optparse); "
    "library(jsonlite)})"
)
AZUREML = "import azureml.core, azureml.data.context_managers; azureml.core.Run.get_context()"
VENV = "/tmp/venv"


def apt_packages() -> str:
    """docker/apt-packages.txt as one line."""
    lines = (DOCKER_DIR / "apt-packages.txt").read_text().splitlines()
    return " ".join(line.strip() for line in lines if line.strip() and not line.startswith("#"))


def script(install: str, python: str, python_libraries: str) -> str:
    """Install, mark the first line of user code (libraries loaded), run the sample step."""
    first_line = (
        f"{python} -c '{python_libraries}' && Rscript -e '{R_LIBRARIES}'"
        " && echo FIRST_LINE $(date +%s.%N)"
    )
    step = (
        f"{python} /steps/prep/prep.py --rows 600 --seed 1 --test-fraction 0.25 --out /work/data"
        " && cd /steps/train && Rscript train.R --data /work/data --n-trees 30 --out /work/model"
    )
    return " && ".join(part for part in (install, first_line, step) if part)


def variants(image: str, bare: str) -> dict[str, tuple[str, str]]:
    """Name -> (image, shell script)."""
    apt = (
        "apt-get update -qq && DEBIAN_FRONTEND=noninteractive "
        f"apt-get install -y -qq --no-install-recommends {apt_packages()} >/dev/null"
    )
    pip = (
        f"python3.11 -m venv {VENV} && {VENV}/bin/pip install -q --no-cache-dir"
        " --disable-pip-version-check -c /docker/constraints.txt pip"
        f" && {VENV}/bin/pip install -q --no-cache-dir --disable-pip-version-check"
        " -r /docker/requirements.txt -c /docker/constraints.txt"
    )
    return {
        "prebuilt image": (image, script("", "python", AZUREML)),
        "bare + apt (Debian binaries)": (bare, script(apt, "python3", "pass")),
        "bare + apt + pip (PyPI)": (bare, script(f"{apt} && {pip}", f"{VENV}/bin/python", AZUREML)),
    }


def run_once(client: docker.DockerClient, image: str, shell: str) -> tuple[float, float]:
    """Seconds from `docker run` to the first line of user code and to the step's end."""
    with tempfile.TemporaryDirectory() as work:
        os.chmod(work, 0o777)
        volumes = {
            str(STEPS): {"bind": "/steps", "mode": "ro"},
            str(DOCKER_DIR): {"bind": "/docker", "mode": "ro"},
            work: {"bind": "/work", "mode": "rw"},
            str(HOST_CA): {"bind": "/amlpipe/host-ca.crt", "mode": "ro"},
        }
        start = time.time()
        container = client.containers.run(
            image,
            ["/bin/sh", "-c", shell],
            volumes=volumes,
            network_mode="host",
            environment={"TZ": "UTC", "PIP_CERT": "/amlpipe/host-ca.crt"},
            detach=True,
        )
        try:
            status = container.wait()
            end = time.time()  # the step's end; removing the container is not part of it
            logs = container.logs().decode()
        finally:
            container.remove(force=True)
    if status["StatusCode"] != 0:
        raise SystemExit(f"{image}: exit {status['StatusCode']}\n{logs[-3000:]}")
    marks = [line.split()[1] for line in logs.splitlines() if line.startswith("FIRST_LINE ")]
    return float(marks[0]) - start, end - start


def main() -> None:
    """Interleave the three variants `--repeat` times; print medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--image", help="training image (default: built from docker/)")
    parser.add_argument(
        "--bare-image",
        default=os.environ.get("AMLPIPE_BARE_BASE_IMAGE", "local/debian-minbase:bookworm"),
    )
    args = parser.parse_args()
    # Removing a container that pip filled takes a while on a busy disk.
    client = docker.from_env(timeout=900)
    image = args.image or default_image(client, DOCKER_DIR)
    runs = variants(image, args.bare_image)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    for index in range(args.repeat):
        for name, (ref, shell) in runs.items():
            first, end = run_once(client, ref, shell)
            results[name].append((first, end))
            print(f"  pass {index + 1} {name}: first line {first:.1f} s, step end {end:.1f} s")
    medians = {
        name: (statistics.median(f for f, _ in times), statistics.median(e for _, e in times))
        for name, times in results.items()
    }
    base_first, base_end = medians["prebuilt image"]
    print(f"cold start, median of {args.repeat}, fresh container each (image {image}):")
    print(f"  {'':<30} {'first line of user code':>24} {'sample step (prep + train)':>28}")
    for name, (first, end) in medians.items():
        print(
            f"  {name:<30} {first:8.1f} s {first / base_first:7.1f}x {'':6}"
            f" {end:8.1f} s {end / base_end:7.1f}x"
        )


if __name__ == "__main__":
    main()
