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

import hashlib
import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build

from infra.definitions.hashing import build_context_tag, iter_tree, tree_digest
from infra.paths import portable, project_root
from infra.settings import ImageSettings, image_problems

# Azure ML compute nodes are x86-64 Linux.
PLATFORM = docker_build.Platform.LINUX_AMD64


class ImageContextError(ValueError):
    """The configured build context or Dockerfile does not exist."""


# Staged build contexts live here, under the project root (git-ignored with the rest of .amlpipe).
STAGING_DIR = Path(".amlpipe") / "image-contexts"
# Every staged file, link and folder gets this modification time (1980-01-01, the earliest a zip
# or tar tool handles everywhere): the layers a COPY makes then hold no checkout time either.
STAGED_MTIME = 315532800
# Staged contexts not used for this long are removed by the next staging.
STAGED_KEEP_SECONDS = 7 * 24 * 3600
_USED_SUFFIX = ".used"


@dataclass(frozen=True)
class StagedContext:
    """A build context copied with normalized metadata (see :func:`stage_context`)."""

    context: Path
    dockerfile: Path


def _normal_mode(source_mode: int) -> int:
    """0755 for executables, 0644 for the rest: the executable bit is part of what the image is
    made of; group/other bits and setuid are the checkout's umask, not content."""
    return 0o755 if source_mode & stat.S_IXUSR else 0o644


def stage_context(context_dir: Path, dockerfile: Path, root: Path) -> StagedContext:
    """The build context as docker-build should see it: only the files `.dockerignore` keeps,
    each with mode 0644 or 0755 (executable bit kept), folders 0755, one fixed modification time.

    pulumi-docker-build 0.0.15 decides whether to rebuild from a hash of every file's bytes *and
    full mode bits*, so the same commit checked out under another umask (a laptop's 022, a CI
    runner's 002) reads as a changed image: rebuilt, pushed under a new digest, every pipeline
    republished. A staged copy makes its hash depend only on what our own tag hashes: paths,
    bytes, executable bits. Staged folders are content-addressed (named by that digest), written
    to a temporary folder and renamed into place, so concurrent programs (two stacks) share one.
    """
    digest = tree_digest(context_dir, ignore_file=".dockerignore").digest
    inside = dockerfile.resolve().is_relative_to(context_dir.resolve())
    dockerfile_rel = dockerfile.resolve().relative_to(context_dir.resolve()) if inside else None
    dockerfile_hash = hashlib.sha256(dockerfile.read_bytes()).hexdigest()
    name = hashlib.sha256(f"{digest}\0{dockerfile_rel}\0{dockerfile_hash}".encode()).hexdigest()[
        :24
    ]
    staging = root / STAGING_DIR
    target = staging / name
    # A Dockerfile outside the context is staged beside it (docker-build hashes its bytes only).
    staged_dockerfile = (
        target / dockerfile_rel if dockerfile_rel else staging / f"{name}.Dockerfile"
    )
    if dockerfile_rel is None and not staged_dockerfile.is_file():
        staging.mkdir(parents=True, exist_ok=True)
        handle, temporary_file = tempfile.mkstemp(prefix=f".{name}-", dir=staging)
        os.close(handle)
        shutil.copyfile(dockerfile, temporary_file)
        os.chmod(temporary_file, 0o644)
        os.replace(temporary_file, staged_dockerfile)
    if not _is_staged(target, digest):
        staging.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=staging))
        try:
            _copy_normalized(context_dir, temporary, dockerfile_rel)
            try:
                os.rename(temporary, target)
            except OSError:
                if not _is_staged(target, digest):  # not a twin written concurrently: stale
                    shutil.rmtree(target, ignore_errors=True)
                    os.rename(temporary, target)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    (staging / f"{name}{_USED_SUFFIX}").touch()
    _prune(staging, keep=name)
    return StagedContext(target, staged_dockerfile)


def _copy_normalized(source: Path, target: Path, dockerfile_rel: Path | None) -> None:
    """Copy what `.dockerignore` keeps (plus the Dockerfile, which docker always reads) from
    `source` to `target`, with normalized modes and times."""
    files = list(iter_tree(source, ignore_file=".dockerignore"))
    if dockerfile_rel is not None:
        files.append((dockerfile_rel.as_posix(), source / dockerfile_rel))
    folders: set[Path] = {target}
    for rel, path in files:
        destination = target / rel
        for parent in reversed(destination.relative_to(target).parents[:-1]):
            folders.add(target / parent)
        destination.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            if destination.is_symlink() or destination.exists():
                destination.unlink()
            os.symlink(os.readlink(path), destination)
        else:
            shutil.copyfile(path, destination, follow_symlinks=False)
            os.chmod(destination, _normal_mode(path.stat().st_mode))
        os.utime(destination, (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
    for folder in sorted(folders, key=lambda f: len(f.parts), reverse=True):
        os.chmod(folder, 0o755)
        os.utime(folder, (STAGED_MTIME, STAGED_MTIME))


def _is_staged(target: Path, digest: str) -> bool:
    """Whether `target` holds exactly the context of `digest` with normalized metadata."""
    if not target.is_dir():
        return False
    for _, path in iter_tree(target, ignore_file=".dockerignore"):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) not in (0o644, 0o755):
            return False
    return tree_digest(target, ignore_file=".dockerignore").digest == digest


def _prune(staging: Path, keep: str) -> None:
    """Remove staged contexts no program used for :data:`STAGED_KEEP_SECONDS`."""
    cutoff = time.time() - STAGED_KEEP_SECONDS
    for marker in staging.glob(f"*{_USED_SUFFIX}"):
        name = marker.name[: -len(_USED_SUFFIX)]
        try:
            stale = name != keep and marker.stat().st_mtime < cutoff
        except FileNotFoundError:
            continue
        if stale:
            shutil.rmtree(staging / name, ignore_errors=True)
            marker.unlink(missing_ok=True)


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
        return self.image.context_dir(self.repo_root)

    @property
    def dockerfile(self) -> Path:
        """Absolute Dockerfile path (relative to the context in config)."""
        return self.image.dockerfile_path(self.repo_root)


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
        root = project_root()
        staged = stage_context(args.context_dir, args.dockerfile, root)
        image = docker_build.Image(
            f"{name}-image",
            # The staged copy, not the checkout: see stage_context (umask-independent identity).
            context=docker_build.BuildContextArgs(location=_portable(staged.context)),
            dockerfile=docker_build.DockerfileArgs(location=_portable(staged.dockerfile)),
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
    """Refuse a missing context or Dockerfile, naming the config key. The program finds these
    before registering anything (:mod:`infra.preflight`); this guards the component itself."""
    problems = image_problems({args.key: args.image}, args.repo_root)
    if problems:
        raise ImageContextError(str(problems[0]))
