"""Docker side of the local runner: engine connection, the training image (name, tag, build) and
the container executor. Uses the docker SDK; every container and build uses the host network."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.definitions.hashing import build_context_tag, tree_digest
from infra.runner.errors import RunnerError
from infra.runner.executor import CANCELLED_EXIT, LineSink, RunningStep, split_lines
from infra.runner.plan import StepPlan

if TYPE_CHECKING:  # the docker SDK is imported only when a Docker command runs
    from docker.models.containers import Container

    from docker import DockerClient

IMAGE_REPOSITORY = "azureml-pipelines/training"
"""Local repository of the image built from docker/ (the same name `amlpipe hash` assumes)."""
LABEL = "amlpipe"
"""Every container the runner starts carries this label (value: the run id)."""
CONTEXT_LABEL = "amlpipe.context-files"
"""Image label: digest of the docker/ files it was built from (build arguments aside)."""

_NO_ENGINE_HINT = (
    "start Docker (on Debian as root: `.ci/docker.sh start`, or `dockerd` / "
    "`systemctl start docker`), "
    "set DOCKER_HOST if it listens elsewhere, or run without Docker: --executor process"
)


def connect(jobs: int = 4) -> DockerClient:
    """A client for the engine in DOCKER_HOST (or the default socket), checked with a ping."""
    from docker.errors import DockerException

    import docker

    try:
        # Log streams hold one connection per running step: size the pool for them.
        client = docker.from_env(max_pool_size=max(10, 2 * jobs + 4))
        client.ping()
    except DockerException as exc:
        where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        raise RunnerError(
            f"cannot reach the Docker engine at {where}: {exc}", _NO_ENGINE_HINT
        ) from None
    return client


def image_tag(context: Path, build_args: Mapping[str, str]) -> str:
    """`azureml-pipelines/training:<content tag>`, the tag the Pulumi image resource uses too."""
    return f"{IMAGE_REPOSITORY}:{build_context_tag(context, dict(build_args))}"


def _build_hint(context: Path) -> str:
    return (
        f"build it with `amlpipe build` (context {context}; "
        "where mcr.microsoft.com is unreachable add "
        "--build-arg BASE_IMAGE=<a local Debian/Ubuntu image>), pass --image REF, "
        "or use --executor process"
    )


def default_image(client: DockerClient, context: Path) -> str:
    """The image built from `context` as it is now: the default-argument tag if present, else the
    newest image built from the same files with other build arguments (e.g. another BASE_IMAGE)."""
    from docker.errors import ImageNotFound

    tag = image_tag(context, {})
    try:
        client.images.get(tag)
        return tag
    except ImageNotFound:
        pass
    files = tree_digest(context, ignore_file=".dockerignore").digest
    candidates = client.images.list(filters={"label": f"{CONTEXT_LABEL}={files}"})
    tagged = [image for image in candidates if image.tags]
    if not tagged:
        raise RunnerError(
            f"no image built from {context} in its current state", _build_hint(context)
        )
    newest = max(tagged, key=lambda image: str(image.attrs.get("Created", "")))
    return str(newest.tags[0])


def ensure_image(client: DockerClient, ref: str, context: Path) -> None:
    """RunnerError with what to do when `ref` is not in the local engine (no pulls: offline use)."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(ref)
    except ImageNotFound:
        raise RunnerError(
            f"image {ref!r} not found in the local Docker engine", _build_hint(context)
        ) from None


@dataclass(frozen=True)
class BuildResult:
    """Outcome of `amlpipe build`."""

    tag: str
    built: bool
    """False when the tag already existed and the build was skipped."""


def build_image(
    client: DockerClient,
    context: Path,
    build_args: Mapping[str, str],
    on_line: LineSink,
    force: bool = False,
) -> BuildResult:
    """Build `context` (host network) as its content tag, unless that tag already exists."""
    from docker.errors import APIError, BuildError, ImageNotFound

    tag = image_tag(context, build_args)
    if not force:
        try:
            client.images.get(tag)
            return BuildResult(tag, built=False)
        except ImageNotFound:
            pass
    labels = {CONTEXT_LABEL: tree_digest(context, ignore_file=".dockerignore").digest}
    try:
        stream = client.api.build(
            path=str(context),
            tag=tag,
            buildargs=dict(build_args),
            labels=labels,
            network_mode="host",
            rm=True,
            forcerm=True,
            decode=True,
        )
        _follow_build(stream, on_line)
    except (APIError, BuildError) as exc:
        raise RunnerError(
            f"building {context} failed: {exc}", "see the build output above"
        ) from None
    return BuildResult(tag, built=True)


def _follow_build(stream: Iterator[dict[str, Any]], on_line: LineSink) -> None:
    from docker.errors import BuildError

    for event in stream:
        if "error" in event:
            raise BuildError(event["error"].strip(), [])
        text = event.get("stream") or event.get("status") or ""
        for line in str(text).splitlines():
            if line.strip():
                on_line(line)


class _Container:
    """A step running in a container."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._cancelled = False

    def wait(self, on_line: LineSink) -> int:
        from docker.errors import APIError, NotFound

        try:
            for line in split_lines(self._container.logs(stream=True, follow=True)):
                on_line(line)
            code = int(self._container.wait()["StatusCode"])
        except (NotFound, APIError):
            if self._cancelled:
                return CANCELLED_EXIT
            raise
        self._remove()
        return CANCELLED_EXIT if self._cancelled else code

    def cancel(self) -> None:
        self._cancelled = True
        self._remove()

    def _remove(self) -> None:
        from docker.errors import APIError, NotFound

        try:
            self._container.remove(force=True)
        except NotFound:
            pass
        except APIError as exc:
            if "already in progress" not in str(exc):
                raise


class DockerExecutor:
    """Runs each step in a fresh container of `image` (host network, caller's uid)."""

    name = "docker"

    def __init__(
        self, client: DockerClient, image: str, run_id: str, labels: Mapping[str, str]
    ) -> None:
        self._client = client
        self._image = image
        self._run_id = run_id
        self._labels = {LABEL: run_id, **labels}

    def interpreters(self) -> dict[str, str]:
        # The image puts its venv's `python` first on PATH (docker/Dockerfile).
        return {"python": "python", "r": "Rscript"}

    def check(self, plans: Iterable[StepPlan]) -> None:
        """Nothing per step: the image was checked when the executor was made."""

    def start(self, plan: StepPlan) -> RunningStep:
        volumes = {
            str(m.host): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
            for m in plan.mounts
        }
        container = self._client.containers.create(
            self._image,
            # One pipe for both streams, inside the container: the engine reads stdout and stderr
            # separately and would interleave them out of order in the log.
            command=["/bin/sh", "-c", 'exec "$@" 2>&1', "amlpipe-step", *plan.argv],
            working_dir=plan.workdir,
            volumes=volumes,
            environment={"PYTHONUNBUFFERED": "1", **plan.environment},
            labels={**self._labels, "amlpipe.step": plan.name},
            network_mode="host",
            # The caller's uid: outputs written by the step belong to whoever ran `amlpipe run`.
            user=f"{os.getuid()}:{os.getgid()}",
            name=f"amlpipe-{self._run_id}-{plan.name}",
        )
        running = _Container(container)
        try:
            container.start()
        except Exception:
            running.cancel()  # never leave a created-but-unstarted container behind
            raise
        return running

    def cleanup(self) -> None:
        """Remove every container of this run, running or not."""
        for container in self._client.containers.list(
            all=True, filters={"label": f"{LABEL}={self._run_id}"}
        ):
            _Container(container).cancel()
