"""Credentials in the environment never reach the pickled provider, the inputs or the outputs
(v1 here; the v2 providers' state and requests through the host in
tests/azureml_v2/test_v2_provider_host.py)."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from infra.provider.azureml_v2.dynamic import DefaultDeploymentProvider, PipelineComponentProvider
from infra.provider.provider import PipelineEndpointProvider, PipelineScheduleProvider
from tests.provider.grpc_host import ENDPOINT_TYPE, PROVIDERS, SCHEDULE_TYPE, ProviderHost, Stack
from tests.provider.provider_fixtures import STORE, Project

SECRETS = {
    "AZURE_CLIENT_ID": "11111111-2222-3333-4444-555555555555",
    "AZURE_TENANT_ID": "66666666-7777-8888-9999-000000000000",
    "AZURE_CLIENT_SECRET": "sUpEr-SeCrEt-ClIeNt-VaLuE~42",
    "ARM_CLIENT_SECRET": "arm-SeCrEt-VaLuE~43",
    "AZURE_FEDERATED_TOKEN": "eyJ-fEdErAtEd-ToKeN-44",
}


def _leaks(text: str) -> list[str]:
    return [name for name, value in SECRETS.items() if value in text]


def test_no_credential_in_pickled_provider_inputs_or_outputs(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    # The provider as the program pickles it, with credentials in the environment.
    providers = (
        PipelineEndpointProvider(),
        PipelineScheduleProvider(),
        PipelineComponentProvider(),
        DefaultDeploymentProvider(),
    )
    for provider in providers:
        pickled = base64.b64decode(serialize_provider(provider))
        assert not _leaks(pickled.decode("latin-1"))

    host = ProviderHost(project.root, env=SECRETS)
    try:
        host.configure(
            {"azureml-pipelines:backend": "local", "azureml-pipelines:localStorePath": STORE}
        )
        stack = Stack(host)
        stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
        endpoint_id = stack.state["demo"].id
        stack.up(SCHEDULE_TYPE, "nightly", project.schedule_inputs(endpoint_id))
        project.write("pipeline_defs/demo/steps/prep/prep.py", "print('v2')\n")
        stack.up(ENDPOINT_TYPE, "demo", project.endpoint_inputs())
        stack.refresh("demo")
    finally:
        host.close()

    for state in stack.state.values():
        for props in (state.inputs, state.outputs):
            assert not _leaks(json.dumps(props, default=str))
            assert props["__provider"] in PROVIDERS.values()
    store_bytes = (project.root / STORE).read_bytes().decode("latin-1")
    assert not _leaks(store_bytes)
    assert os.environ["AZURE_CLIENT_SECRET"] == SECRETS["AZURE_CLIENT_SECRET"]


def test_provider_modules_import_without_side_effects(tmp_path: Path) -> None:
    """Importing the provider stack creates no file, reads no config and never imports azureml."""
    import subprocess
    import sys

    code = (
        "import sys, os\n"
        "import infra.provider.resources, infra.provider.provider\n"
        "import infra.provider.azureml_v1.adapter, infra.provider.azureml_v1.auth\n"
        "import infra.components.pipelines\n"
        "bad = sorted(m for m in sys.modules if m == 'azureml' or m.startswith('azureml.'))\n"
        "print(bad); print(sorted(os.listdir('.')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert result.stdout.splitlines() == ["[]", "[]"], result.stdout + result.stderr
