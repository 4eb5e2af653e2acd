"""A project copy, the loopback fake ARM service and the real provider host started as the Pulumi
CLI starts it (tests/launch/pulumi_cli.py), wired together for the v2 host tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.azureml_v2.fake_arm import FakeArm
from tests.azureml_v2.fake_blob import FakeBlobService
from tests.azureml_v2.loopback import LoopbackArm, serve
from tests.azureml_v2.program_engine import REPO_ROOT, copy_project
from tests.launch.pulumi_cli import Layout, dynamic_provider_command
from tests.provider.grpc_host import ProviderHost

AZURE_LOGIN_VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_CLIENT_CERTIFICATE_PATH",
    "AZURE_USERNAME",
    "AZURE_PASSWORD",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "MSI_ENDPOINT",
    "MSI_SECRET",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "AZUREML_CURRENT_CLOUD",
)
"""The developer's or CI's own Azure login: blanked so the host can only reach the loopback."""


def project_copy(tmp_path: Path) -> Path:
    """A copy of the project with its `.venv` (a link to the repository's), as the CLI needs."""
    project = copy_project(tmp_path / "project")
    (project / ".venv").symlink_to((REPO_ROOT / ".venv").resolve())
    return project


def start_host(
    project: Path, arm: LoopbackArm, config: dict[str, str], extra_env: dict[str, str] | None = None
) -> ProviderHost:
    """The provider host started in `project` as the CLI and its plugin script start it, reaching
    the loopback service through the SDKs' own environment settings, configured with `config`."""
    argv, env, cwd = dynamic_provider_command(Layout.of(project))
    env = {k: v for k, v in env.items() if k not in AZURE_LOGIN_VARIABLES}
    # The project's modules are importable in the real project (its folder is the host's cwd,
    # first on sys.path); here `infra` lives in the repository, so it goes on the path.
    path = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env = {**env, "PYTHONPATH": path, **arm.host_env(), **(extra_env or {})}
    host = ProviderHost(cwd, argv=argv, full_env=env)
    host.configure(config)
    return host


@contextmanager
def loopback(tmp_path: Path, arm: FakeArm | None = None) -> Iterator[LoopbackArm]:
    """The fake ARM service on loopback for the duration of a test, with the loopback blob
    service behind its `startPendingUpload` (step code really uploaded by the host)."""
    folder = tmp_path / "tls"
    folder.mkdir(parents=True, exist_ok=True)
    blobs = FakeBlobService().start()
    try:
        if arm is None:
            arm = FakeArm()
        arm.blobs = blobs
        with serve(arm, folder) as served:
            yield served
    finally:
        blobs.stop()
