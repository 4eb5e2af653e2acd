"""Docker side of the local runner: engine connection, the training image (name, tag, build) and
the container executor. Uses the docker SDK; every container and build uses the host network."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.definitions.hashing import build_context_tag, tree_digest
from infra.runner.errors import RunnerError
from infra.runner.executor import CANCELLED_EXIT, RunningStep
from infra.runner.plan import CONTAINER_ROOT, StepPlan

if TYPE_CHECKING:  # the docker SDK is imported only when a Docker command runs
    from requests import Response

    from docker import APIClient, DockerClient

LineSink = Callable[[str], None]

IMAGE_REPOSITORY = "azureml-pipelines/training"
"""Local repository of the image built from docker/ (the same name `amlpipe hash` assumes)."""
LABEL = "amlpipe"
"""Every container the runner starts carries this label (value: the run id)."""
CONTEXT_LABEL = "amlpipe.context-files"
CONTAINER_LOG = str(CONTAINER_ROOT / "step.log")
"""Where a step's container sees its log file."""
"""Image label: digest of the docker/ files it was built from (build arguments aside)."""

_NO_ENGINE_HINT = (
    "start Docker (on Debian as root: `.ci/docker.sh start`, or `dockerd` / "
    "`systemctl start docker`), "
    "set DOCKER_HOST if it listens elsewhere, or run without Docker: --executor process"
)


def _import_docker_sdk() -> None:
    """Import the docker SDK without paramiko, unless DOCKER_HOST is an ssh:// URL.

    docker.transport imports paramiko (and cryptography under it) whenever it is installed,
    only to offer ssh:// hosts: a third of the SDK's import time, paid by every `amlpipe run`.
    A None entry in sys.modules makes that optional import fail as if paramiko were absent; the
    entry is removed at once, so anything else may still import paramiko.
    """
    if "docker" in sys.modules or "paramiko" in sys.modules:
        return
    if os.environ.get("DOCKER_HOST", "").startswith("ssh://"):
        return
    sys.modules["paramiko"] = None  # type: ignore[assignment]
    try:
        import docker  # noqa: F401
    finally:
        del sys.modules["paramiko"]


def connect(jobs: int = 4) -> DockerClient:
    """A client for the engine in DOCKER_HOST (or the default socket).

    Reaching the engine is checked by the client itself: it asks the engine for its API version
    when it is made (no separate ping: one round trip less per run)."""
    _import_docker_sdk()
    from docker.errors import DockerException

    import docker

    try:
        # Log streams hold one connection per running step: size the pool for them.
        client = docker.from_env(version="auto", max_pool_size=max(10, 2 * jobs + 4))
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
    """A step running in a container (its output goes to the log file mounted into it).

    Driven through the SDK's low-level client by id: the high-level `containers.create` inspects
    every container it creates (one more round trip before the step can start) and nothing here
    needs that model.

    The container is created with AutoRemove, as `docker run --rm` does: the engine removes it
    the moment it ends, instead of after the exit status reached us and a DELETE came back (that
    round trip sat between the step's end and the run's). Its exit status is then only known to
    a wait registered before it can end: :meth:`listen` sends `wait?condition=removed` before the
    start and returns once the engine has answered with the headers, which it sends when the
    wait is registered; :meth:`wait` reads the status from that answer. Nothing is lost to the
    removal: the step's log is a file on the host.
    """

    def __init__(self, api: APIClient, container_id: str) -> None:
        self._api = api
        self.id = container_id
        self._answer: Response | None = None
        self._killed = False

    def listen(self) -> None:
        """Register the wait for this container's removal (before it is started)."""
        # The SDK's `wait` reads the whole answer, so it returns only when the container is
        # gone; the same request through the client's own `_post`, streamed, returns at the
        # headers. No timeout: a step may run for days.
        self._answer = self._api._post(
            self._api._url("/containers/{0}/wait", self.id),
            params={"condition": "removed"},
            stream=True,
            timeout=None,
        )
        self._api._raise_for_status(self._answer)

    def wait(self) -> int:
        assert self._answer is not None, "listen() before start"
        try:
            # One blocking read: the engine answers when the container is removed (no polling).
            status = self._answer.json()
        finally:
            self._answer.close()
        if self._killed:
            # Removed by a stop (SIGKILL): what the step would have returned is unknown.
            return CANCELLED_EXIT
        if (status.get("Error") or {}).get("Message"):
            raise RunnerError(f"the engine lost the container: {status['Error']['Message']}")
        return int(status["StatusCode"])

    def terminate(self) -> None:
        from docker.errors import APIError, NotFound

        # The container's init (docker-init) passes SIGTERM on to the step. Errors: it has
        # already ended or is being removed.
        with contextlib.suppress(NotFound, APIError):
            self._api.kill(self.id, signal="SIGTERM")

    def kill(self) -> None:
        self._killed = True
        self._remove()

    def discard(self) -> None:
        """Drop the registered wait of a container that never started."""
        if self._answer is not None:
            self._answer.close()

    def _remove(self) -> None:
        from docker.errors import APIError, NotFound

        try:
            # Force: kills (SIGKILL) what still runs, then removes the container.
            self._api.remove_container(self.id, force=True)
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

    def start(self, plan: StepPlan, log_file: Path) -> RunningStep:
        volumes = {
            str(m.host): {"bind": m.target, "mode": "ro" if m.read_only else "rw"}
            for m in plan.mounts
        }
        volumes[str(log_file)] = {"bind": CONTAINER_LOG, "mode": "rw"}
        api = self._client.api
        container = api.create_container(
            self._image,
            # Both streams into the mounted log file, in the order they were written, at the
            # step's own speed: the engine's log driver is not in the way (it would frame every
            # line and send it through its API).
            command=["/bin/sh", "-c", f'exec "$@" >>{CONTAINER_LOG} 2>&1', "step", *plan.argv],
            working_dir=plan.workdir,
            environment={"PYTHONUNBUFFERED": "1", **plan.environment},
            labels={**self._labels, "amlpipe.step": plan.name},
            # The caller's uid: outputs written by the step belong to whoever ran `amlpipe run`.
            user=f"{os.getuid()}:{os.getgid()}",
            name=f"amlpipe-{self._run_id}-{plan.name}",
            volumes=[volume["bind"] for volume in volumes.values()],
            host_config=api.create_host_config(
                binds=volumes,
                network_mode="host",
                # docker-init as PID 1: it forwards SIGTERM to the step (a PID 1 step would
                # ignore it) and reaps what the step starts.
                init=True,
                # Removed by the engine as it ends (see _Container).
                auto_remove=True,
            ),
        )
        running = _Container(api, str(container["Id"]))
        try:
            running.listen()
            api.start(running.id)
        except BaseException:
            running.kill()  # never leave a created-but-unstarted container behind
            running.discard()
            raise
        return running

    def close(self) -> None:
        """Nothing to release: containers are removed as their steps end."""

    def cleanup(self) -> None:
        """Remove every container of this run, running or not."""
        api = self._client.api
        for container in api.containers(all=True, filters={"label": f"{LABEL}={self._run_id}"}):
            _Container(api, str(container["Id"])).kill()
