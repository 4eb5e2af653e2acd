"""`.ci/docker.sh mirror`: the Debian mirror for debootstrap comes from DEBIAN_MIRROR or the host's
own apt sources (one-line and deb822 formats), never from a host name in the repository."""

from __future__ import annotations

import os
import subprocess
import textwrap
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HELPER = REPO_ROOT / ".ci" / "docker.sh"
DEBIAN = 'ID=debian\nVERSION_CODENAME="{codename}"\n'


def mirror(
    tmp_path: Path,
    files: dict[str, str],
    os_release: str = DEBIAN.format(codename="bookworm"),
    override: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run `docker.sh mirror` against a made-up /etc/apt and /etc/os-release."""
    etc = tmp_path / "apt"
    (etc / "sources.list.d").mkdir(parents=True)
    for name, text in files.items():
        (etc / name).write_text(textwrap.dedent(text), encoding="utf-8")
    (tmp_path / "os-release").write_text(os_release, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "DEBIAN_MIRROR"}
    env |= {"AMLPIPE_APT_ETC": str(etc), "AMLPIPE_OS_RELEASE": str(tmp_path / "os-release")}
    if override is not None:
        env["DEBIAN_MIRROR"] = override
    return subprocess.run(
        ["bash", str(HELPER), "mirror"], env=env, capture_output=True, text=True, timeout=30
    )


def test_one_line_sources_list_with_options_and_comments(tmp_path: Path) -> None:
    result = mirror(
        tmp_path,
        {
            "sources.list": """\
                # deb http://commented.example/debian bookworm main
                deb-src http://src.example/debian bookworm main
                deb [ arch=amd64 signed-by=/k.gpg ] http://mirror.example/debian/ bookworm main # x
                deb http://mirror.example/debian-security bookworm-security main
            """
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://mirror.example/debian\n"


def test_deb822_sources_skip_disabled_entries_and_other_suites(tmp_path: Path) -> None:
    result = mirror(
        tmp_path,
        {
            "sources.list.d/debian.sources": """\
                Types: deb
                URIs: http://old.example/debian
                Suites: bookworm
                Enabled: no

                # the security archive comes first but has no plain bookworm suite
                Types: deb
                URIs: https://proxy.example/debian-security
                Suites: bookworm-security
                Components: main

                Types: deb-src deb
                URIs:
                 https://proxy.example/debian
                Suites: bookworm
                 bookworm-updates
                Components: main
                Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
            """,
            # Not a sources file (apt reads only *.list and *.sources).
            "sources.list.d/other.sources.disabled": "Types: deb\nURIs: http://x.example/d\n"
            "Suites: bookworm\n",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "https://proxy.example/debian\n"


def test_a_debian_host_of_another_release_lends_its_own_mirror(tmp_path: Path) -> None:
    result = mirror(
        tmp_path,
        {
            "sources.list.d/nodesource.sources": "Types: deb\nURIs: https://node.example/node\n"
            "Suites: nodistro\n",
            "sources.list.d/debian.list": "deb http://trixie.example/debian trixie main\n",
        },
        os_release=DEBIAN.format(codename="trixie"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "http://trixie.example/debian\n"


def test_no_debian_source_is_a_clear_failure(tmp_path: Path) -> None:
    result = mirror(
        tmp_path,
        {"sources.list": "deb http://ubuntu.example/ubuntu jammy main\n"},
        os_release="ID=ubuntu\nVERSION_CODENAME=jammy\n",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "no Debian mirror" in result.stderr and "suite bookworm" in result.stderr
    assert "set DEBIAN_MIRROR=" in result.stderr


def test_debian_mirror_variable_overrides_the_host_sources(tmp_path: Path) -> None:
    result = mirror(
        tmp_path,
        {"sources.list": "deb http://host.example/debian bookworm main\n"},
        override="https://override.example/debian/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "https://override.example/debian\n"


@pytest.mark.parametrize(
    "host", ["deb." + "debian.org", "security." + "debian.org", "archive." + "ubuntu.com"]
)
def test_no_package_host_is_written_into_the_repository(host: str) -> None:
    found = subprocess.run(
        ["git", "grep", "-l", "-F", host], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert found.stdout == "", f"{host} named in: {found.stdout}"


class FakeDaemon:
    """A detached process named `dockerd` (a copy of `sleep`): what `stop` checks before killing.

    Detached (its starting shell exits) as `docker.sh start` leaves the real one, so once killed it
    is reaped by init and `stop`'s wait sees it gone instead of a zombie child of this test."""

    def __init__(self, tmp_path: Path, name: str = "dockerd") -> None:
        binary = tmp_path / name
        binary.write_bytes(Path("/bin/sleep").read_bytes())
        binary.chmod(0o755)
        started = subprocess.run(
            ["bash", "-c", f"nohup {binary} 120 >/dev/null 2>&1 </dev/null & echo $!"],
            capture_output=True,
            text=True,
            check=True,
        )
        self.pid = int(started.stdout)

    def alive(self) -> bool:
        try:
            state = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, IndexError):
            return False
        return state != "Z"

    def kill(self) -> None:
        if self.alive():
            os.kill(self.pid, 9)


def stop(tmp_path: Path, started_pid: str | None) -> subprocess.CompletedProcess[str]:
    """Run `docker.sh stop` with its state folder in `tmp_path`, as a shell whose `start` printed
    `AMLPIPE_DOCKERD_PID=<started_pid>` (None: a shell that never ran `start`)."""
    env = {k: v for k, v in os.environ.items() if k != "AMLPIPE_DOCKERD_PID"}
    env["AMLPIPE_DOCKER_STATE"] = str(tmp_path / "state")
    if started_pid is not None:
        env["AMLPIPE_DOCKERD_PID"] = started_pid
    return subprocess.run(
        ["bash", str(HELPER), "stop"], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("started_pid", [None, ""])
def test_stop_leaves_a_daemon_another_checkout_started(
    tmp_path: Path, started_pid: str | None
) -> None:
    # Another clone's `start` started dockerd and wrote the shared pid file; this shell's `start`
    # found the engine running (empty AMLPIPE_DOCKERD_PID) or never ran: `stop` must not kill it.
    daemon = FakeDaemon(tmp_path)
    try:
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "dockerd.pid").write_text(f"{daemon.pid}\n")
        result = stop(tmp_path, started_pid)
        assert result.returncode == 0, result.stderr
        assert "nothing to stop" in result.stderr
        assert daemon.alive()
        assert (tmp_path / "state" / "dockerd.pid").exists()
    finally:
        daemon.kill()


def test_stop_ends_the_daemon_this_shells_start_started(tmp_path: Path) -> None:
    daemon = FakeDaemon(tmp_path)
    try:
        (tmp_path / "state").mkdir()
        (tmp_path / "state" / "dockerd.pid").write_text(f"{daemon.pid}\n")
        result = stop(tmp_path, str(daemon.pid))
        assert result.returncode == 0, result.stderr
        assert "stopping dockerd" in result.stderr
        assert not daemon.alive()
        assert not (tmp_path / "state" / "dockerd.pid").exists()
    finally:
        daemon.kill()


def test_stop_never_kills_a_reused_pid_that_is_not_dockerd(tmp_path: Path) -> None:
    other = FakeDaemon(tmp_path, name="something-else")
    try:
        result = stop(tmp_path, str(other.pid))
        assert result.returncode == 0, result.stderr
        assert "no longer dockerd" in result.stderr
        assert other.alive()
    finally:
        other.kill()
