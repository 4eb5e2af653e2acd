"""TrainingImage component: builds a Docker context with pulumi-docker-build and pushes it to ACR.

The tag is `build_context_tag(context, build_args)` from the spec core: a hash of the context's
files (`.dockerignore` honoured) and build arguments, the same tag `amlpipe build` computes. An
unchanged context therefore means unchanged inputs: no rebuild, no push, no diff.

Registry authentication: the registry's admin user is off and no credentials pass through this
resource (they would land in the Pulumi state). The push uses the Docker credentials of the
machine running `pulumi up`: `az acr login --name <registry>` exchanges the caller's Azure AD
identity (a developer's `az login`, or CI's OIDC federated identity, which needs AcrPush on the
registry) for a short-lived ACR token stored in the Docker config, which BuildKit reads. The
README's "Registry login" section gives the sequence on a new stack (the registry must exist
before the login).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from infra.definitions.hashing import build_context_tag
from infra.paths import portable
from infra.settings import ImageSettings

# Azure ML compute nodes are x86-64 Linux.
PLATFORM = docker_build.Platform.LINUX_AMD64


class ImageContextError(ValueError):
    """The configured build context or Dockerfile does not exist."""


@dataclass(frozen=True)
class TrainingImageArgs:
    """An image's key and settings, the repository root its context is relative to, and the
    registry."""

    key: str
    """The image key in config (`images.<key>`): the repository name in the registry."""
    image: ImageSettings
    repo_root: Path
    registry_login_server: pulumi.Input[str]

    @property
    def context_dir(self) -> Path:
        """Absolute build context folder."""
        return (self.repo_root / self.image.context).resolve()

    @property
    def dockerfile(self) -> Path:
        """Absolute Dockerfile path (relative to the context in config)."""
        return self.context_dir / self.image.dockerfile


def _portable(path: Path) -> str:
    """`path` relative to the project root: the docker-build plugin resolves relative paths
    against its working directory, which the CLI sets to the program folder, the project root
    (Pulumi.yaml sets no `main:`); and a relative path keeps the stored inputs the same on every
    machine and checkout location (an absolute one would show up as a change that rebuilds)."""
    return portable(path)


class TrainingImage(pulumi.ComponentResource):
    """A Docker image built from a context folder and pushed to the registry, tagged by content."""

    tag: str
    repository: str
    ref: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(
        self, name: str, args: TrainingImageArgs, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        super().__init__("azureml-pipelines:image:TrainingImage", name, None, opts)
        _check_context(args)
        build_args = dict(args.image.build_args)
        self.repository = args.key
        self.tag = build_context_tag(args.context_dir, build_args)
        image = docker_build.Image(
            f"{name}-image",
            context=docker_build.BuildContextArgs(location=_portable(args.context_dir)),
            dockerfile=docker_build.DockerfileArgs(location=_portable(args.dockerfile)),
            build_args=build_args,
            platforms=[PLATFORM],
            tags=[
                pulumi.Output.concat(args.registry_login_server, f"/{self.repository}:{self.tag}")
            ],
            push=True,
            # A preview must not need Docker or registry access (PR previews run without them).
            build_on_preview=False,
            opts=pulumi.ResourceOptions(parent=self),
        )
        # `ref` is "<registry>/<repository>:<tag>@sha256:<digest>": pinned to the pushed bytes.
        self.ref = image.ref
        self.digest = image.digest
        self.register_outputs({"tag": self.tag, "ref": self.ref, "digest": self.digest})


def _check_context(args: TrainingImageArgs) -> None:
    """Fail at program start, naming the config key, rather than in the middle of a deployment."""
    key = f"azureml-pipelines:images.{args.key}"
    if not args.context_dir.is_dir():
        raise ImageContextError(f"{key}.context: build context {args.context_dir} is not a folder")
    if not args.dockerfile.is_file():
        raise ImageContextError(f"{key}.dockerfile: {args.dockerfile} does not exist")
