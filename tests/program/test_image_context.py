"""Image identity across machines: the same commit checked out under two umasks is the same image.

pulumi-docker-build 0.0.15 decides "changed" from a hash of the build context that includes every
file's full mode string (provider/internal/context.go: `hashFile` writes the bytes, the relative
path and `fileMode.String()`). `docker_build_hash` below computes that same hash input, so the
tests show both the problem (the raw checkouts differ) and the fix (the staged contexts the
program hands to docker-build are identical). The checkouts are real `git clone`s made under
umask 022 (a laptop) and 077 (a locked-down runner); the Docker test builds both staged contexts
with the real engine and compares the layer the COPY makes.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from infra.components.image import STAGED_MTIME, stage_context
from infra.definitions.hashing import build_context_tag, iter_tree

BARE_BASE = os.environ.get("AMLPIPE_BARE_BASE_IMAGE", "local/debian-minbase:bookworm")


@pytest.fixture(scope="module")
def docker_client() -> Any:
    """A client of a running Docker engine (skip, or fail with AMLPIPE_REQUIRE_DOCKER=1)."""
    from docker.errors import DockerException

    import docker

    try:
        client = docker.from_env()
        client.ping()
    except DockerException as exc:
        reason = f"no Docker engine reachable ({exc}); start one with `.ci/docker.sh start`"
        if os.environ.get("AMLPIPE_REQUIRE_DOCKER") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return client


def _git(*args: str, cwd: Path, umask: int | None = None) -> None:
    prefix = f"umask {umask:03o} && " if umask is not None else ""
    command = prefix + " ".join(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args])
    subprocess.run(["sh", "-c", command], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same commit cloned under umask 022 and 077."""
    origin = tmp_path_factory.mktemp("origin")
    context = origin / "docker"
    (context / "scripts").mkdir(parents=True)
    (context / "Dockerfile").write_text(
        f'FROM {BARE_BASE}\nCOPY . /app\nCMD ["/app/scripts/run.sh"]\n', encoding="utf-8"
    )
    (context / ".dockerignore").write_text("*.md\n", encoding="utf-8")
    (context / "README.md").write_text("not in the image\n", encoding="utf-8")
    (context / "requirements.txt").write_text("pandas==2.2.3\n", encoding="utf-8")
    run = context / "scripts" / "run.sh"
    run.write_text("#!/bin/sh\necho run\n", encoding="utf-8")
    run.chmod(0o755)
    _git("init", "-q", cwd=origin)
    _git("add", ".", cwd=origin)
    _git("commit", "-q", "-m", "context", cwd=origin)
    clones = []
    for umask in (0o022, 0o077):
        parent = tmp_path_factory.mktemp(f"clone-{umask:03o}")
        _git("clone", "-q", str(origin), "checkout", cwd=parent, umask=umask)
        clones.append(parent / "checkout" / "docker")
    return clones[0], clones[1]


def docker_build_hash(context: Path) -> str:
    """What pulumi-docker-build 0.0.15 hashes: Dockerfile bytes, then per kept file its bytes,
    relative path and full mode string (`stat.filemode` prints regular files as Go does)."""
    digest = hashlib.sha256((context / "Dockerfile").read_bytes())
    for rel, path in iter_tree(context, ignore_file=".dockerignore"):
        digest.update(path.read_bytes())
        digest.update(rel.encode())
        digest.update(stat.filemode(path.lstat().st_mode).encode())
    return digest.hexdigest()


def test_two_umasks_give_checkouts_docker_build_sees_as_different(
    checkouts: tuple[Path, Path],
) -> None:
    laptop, runner = checkouts
    # The problem: same commit, same bytes, same tag of ours, different docker-build hash.
    assert build_context_tag(laptop) == build_context_tag(runner)
    assert docker_build_hash(laptop) != docker_build_hash(runner)


def test_staged_contexts_of_both_checkouts_are_identical_to_docker_build(
    checkouts: tuple[Path, Path], tmp_path: Path
) -> None:
    laptop, runner = checkouts
    one = stage_context(laptop, laptop / "Dockerfile", tmp_path / "laptop")
    two = stage_context(runner, runner / "Dockerfile", tmp_path / "runner")
    assert one.context.relative_to(tmp_path / "laptop") == two.context.relative_to(
        tmp_path / "runner"
    ), "the staged folder name (stored in the image inputs) depends on content only"
    assert docker_build_hash(one.context) == docker_build_hash(two.context)
    # Executable bits survive; everything else is normalized, times included.
    for staged in (one.context, two.context):
        modes = {rel: stat.S_IMODE(p.lstat().st_mode) for rel, p in iter_tree(staged, None)}
        assert modes["scripts/run.sh"] == 0o755
        assert modes["requirements.txt"] == modes["Dockerfile"] == 0o644
        assert "README.md" not in modes  # .dockerignore honoured
        assert {p.lstat().st_mtime for _, p in iter_tree(staged, None)} == {STAGED_MTIME}
        assert stat.S_IMODE((staged / "scripts").stat().st_mode) == 0o755
    # Our own tag does not move either.
    assert build_context_tag(one.context) == build_context_tag(laptop)


def test_a_content_change_is_a_new_staged_context_and_an_unchanged_one_is_reused(
    checkouts: tuple[Path, Path], tmp_path: Path
) -> None:
    laptop, _ = checkouts
    first = stage_context(laptop, laptop / "Dockerfile", tmp_path)
    again = stage_context(laptop, laptop / "Dockerfile", tmp_path)
    assert again == first
    edited = tmp_path / "edited"
    subprocess.run(["cp", "-a", str(laptop), str(edited)], check=True)
    (edited / "scripts" / "run.sh").chmod(0o644)  # only the executable bit changes
    changed = stage_context(edited, edited / "Dockerfile", tmp_path)
    assert changed.context != first.context
    assert docker_build_hash(changed.context) != docker_build_hash(first.context)


def test_a_tampered_staged_context_is_staged_again(
    checkouts: tuple[Path, Path], tmp_path: Path
) -> None:
    laptop, _ = checkouts
    staged = stage_context(laptop, laptop / "Dockerfile", tmp_path)
    (staged.context / "requirements.txt").write_text("evil==1\n", encoding="utf-8")
    (staged.context / "scripts" / "run.sh").chmod(0o777)
    restaged = stage_context(laptop, laptop / "Dockerfile", tmp_path)
    assert (restaged.context / "requirements.txt").read_text(encoding="utf-8") == "pandas==2.2.3\n"
    assert stat.S_IMODE((restaged.context / "scripts" / "run.sh").stat().st_mode) == 0o755


def test_concurrent_programs_stage_the_same_context_safely(
    checkouts: tuple[Path, Path], tmp_path: Path
) -> None:
    laptop, _ = checkouts
    code = (
        "import sys; from pathlib import Path; from infra.components.image import stage_context\n"
        "c = Path(sys.argv[1])\n"
        "print(stage_context(c, c / 'Dockerfile', Path(sys.argv[2])).context)"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(laptop), str(tmp_path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = [p.communicate(timeout=120) for p in processes]
    assert all(p.returncode == 0 for p in processes), [err for _, err in results]
    assert len({out.strip() for out, _ in results}) == 1
    staged = Path(results[0][0].strip())
    assert docker_build_hash(staged) == docker_build_hash(
        stage_context(laptop, laptop / "Dockerfile", tmp_path / "fresh").context
    )
    leftovers = [p.name for p in staged.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def _copied_files(image: Any) -> list[tuple[str, int, int, str]]:
    """(path, mode, mtime, content digest) of every entry the COPY layer holds, except the
    destination folder itself, whose time the builder sets at build time (measured: it differs
    between two builds of one context on one machine, so no context can make it equal)."""
    entries = []
    with tarfile.open(fileobj=io.BytesIO(b"".join(image.save()))) as saved:
        manifest = json.load(saved.extractfile("manifest.json"))  # type: ignore[arg-type]
        with tarfile.open(fileobj=saved.extractfile(manifest[0]["Layers"][-1])) as layer:
            for member in layer.getmembers():
                if member.name == "app":
                    continue
                handle = layer.extractfile(member) if member.isfile() else None
                digest = hashlib.sha256(handle.read() if handle else b"").hexdigest()
                entries.append((member.name, member.mode & 0o7777, member.mtime, digest))
    return sorted(entries)


@pytest.mark.docker
def test_the_real_engine_copies_the_same_files_from_both_checkouts(
    checkouts: tuple[Path, Path], tmp_path: Path, docker_client: Any
) -> None:
    from docker.errors import ImageNotFound

    try:
        docker_client.images.get(BARE_BASE)
    except ImageNotFound:
        pytest.skip(f"base image {BARE_BASE} missing; build it with `.ci/docker.sh start`")
    copied = []
    for index, checkout in enumerate(checkouts):
        staged = stage_context(checkout, checkout / "Dockerfile", tmp_path / str(index))
        tag = f"amlpipe-test/umask-{os.getpid()}-{index}"
        image, _ = docker_client.images.build(
            path=str(staged.context), tag=tag, network_mode="host", nocache=True, rm=True
        )
        try:
            copied.append(_copied_files(image))
        finally:
            docker_client.images.remove(tag, force=True)
    assert copied[0] == copied[1]
    paths = {entry[0]: entry for entry in copied[0]}
    assert paths["app/scripts/run.sh"][1] == 0o755
    assert paths["app/requirements.txt"][1:3] == (0o644, STAGED_MTIME)
