"""GitHub workflows for users: schema-valid, PR previews of dev and prod, deploy dev then prod."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from tests.program.pulumi_config import REPO_ROOT

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
FILES = sorted(WORKFLOWS.glob("*.yml"))


def load(name: str) -> dict[str, Any]:
    return YAML(typ="safe").load((WORKFLOWS / name).read_text(encoding="utf-8"))


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def uses(job: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [s for s in steps(job) if str(s.get("uses", "")).startswith(action + "@")]


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_workflows_match_the_github_workflow_schema() -> None:
    assert {"preview.yml", "deploy.yml", "deploy-stack.yml"} <= {f.name for f in FILES}
    done = check_jsonschema("--builtin-schema", "vendor.github-workflows", *map(str, FILES))
    assert done.returncode == 0, done.stdout + done.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\npermissions:\n  id-token: maybe\n"
        "jobs:\n  a:\n    runs-on: ubuntu-latest\n    steps: [{run: echo}]\n"
    )
    done = check_jsonschema("--builtin-schema", "vendor.github-workflows", str(broken))
    assert done.returncode != 0
    assert "maybe" in done.stdout + done.stderr


def test_preview_runs_pulumi_preview_diff_for_dev_and_prod_and_comments() -> None:
    workflow = load("preview.yml")
    assert "pull_request" in workflow["on"]
    (job,) = workflow["jobs"].values()
    assert job["strategy"]["matrix"]["stack"] == ["dev", "prod"]
    (pulumi,) = [s for s in uses(job, "pulumi/actions") if "command" in s.get("with", {})]
    assert pulumi["with"]["command"] == "preview"
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}"
    assert pulumi["with"]["diff"] is True
    assert pulumi["with"]["comment-on-pr"] is True
    assert workflow["permissions"]["pull-requests"] == "write"


def test_deploy_updates_dev_then_prod_behind_an_environment() -> None:
    workflow = load("deploy.yml")
    assert workflow["on"]["push"]["branches"] == ["main"]
    jobs = workflow["jobs"]
    assert jobs["dev"]["with"]["stack"] == "dev"
    assert jobs["prod"]["with"] == {"stack": "prod", "environment": "production"}
    assert jobs["prod"]["needs"] == "dev"
    reusable = load("deploy-stack.yml")
    (job,) = reusable["jobs"].values()
    assert job["environment"] == "${{ inputs.environment }}"
    commands = "\n".join(str(s.get("run", "")) for s in steps(job))
    assert "pulumi up --yes --skip-preview --diff" in commands
    assert "az acr login" in commands


@pytest.mark.parametrize("name", ["preview.yml", "deploy-stack.yml"])
def test_azure_login_is_oidc_without_client_secret(name: str) -> None:
    workflow = load(name)
    assert workflow["permissions"]["id-token"] == "write"
    (job,) = workflow["jobs"].values()
    (login,) = uses(job, "azure/login")
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    env = {**workflow.get("env", {}), **job.get("env", {})}
    assert env["ARM_USE_OIDC"] == "true"
    assert not any("CLIENT_SECRET" in key for key in env)


def _pinned_sdk_version() -> str:
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        if line.startswith("pulumi=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("requirements.txt pins no pulumi version")


@pytest.mark.parametrize("name", ["preview.yml", "deploy-stack.yml"])
def test_every_workflow_installs_the_cli_version_the_sdk_is_pinned_to(name: str) -> None:
    workflow = load(name)
    (job,) = workflow["jobs"].values()
    env = {**workflow.get("env", {}), **job.get("env", {})}
    version = env["PULUMI_VERSION"]
    assert version == _pinned_sdk_version()
    # --exclude / --exclude-dependents (first deployment of a stack) exist from CLI 3.158.
    assert tuple(int(p) for p in version.split(".")) >= (3, 158, 0)
    for step in uses(job, "pulumi/actions"):
        assert step["with"]["pulumi-version"] == "${{ env.PULUMI_VERSION }}", step


def _stack_check_step() -> tuple[dict[str, Any], dict[str, Any]]:
    (job,) = load("preview.yml")["jobs"].values()
    (check,) = [s for s in steps(job) if s.get("id") == "stack"]
    (preview,) = [s for s in uses(job, "pulumi/actions") if s.get("with", {}).get("command")]
    return check, preview


@pytest.mark.parametrize("exists", [True, False])
def test_preview_of_a_stack_that_does_not_exist_yet_is_skipped_with_a_notice(
    tmp_path: Path, exists: bool
) -> None:
    check, preview = _stack_check_step()
    assert preview["if"] == "steps.stack.outputs.exists == 'true'"
    # Run the step's own script with a fake `pulumi` that knows the stack or not.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "calls"
    fake = bin_dir / "pulumi"
    fake.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> {calls}\n'
        'case "$1" in stack) exit ' + ("0" if exists else "255") + " ;; esac\nexit 0\n"
    )
    fake.chmod(0o755)
    output, summary = tmp_path / "output", tmp_path / "summary"
    done = subprocess.run(
        ["bash", "-e", "-c", check["run"]],
        env={
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "STACK": "dev",
            "PULUMI_BACKEND_URL": "file:///tmp/state",
            "GITHUB_OUTPUT": str(output),
            "GITHUB_STEP_SUMMARY": str(summary),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert output.read_text().strip() == f"exists={'true' if exists else 'false'}"
    # It looks the stack up; it never creates one.
    assert "stack select dev" in calls.read_text()
    assert "--create" not in calls.read_text() and "init" not in calls.read_text()
    if not exists:
        assert "does not exist yet" in summary.read_text()
        assert "::notice" in done.stdout


def test_no_workflow_refreshes_without_registry_login() -> None:
    # docker-build's read of an image it cannot see (no registry login) drops the image from the
    # state; the next `up` then rebuilds and pushes it. A refresh must follow `az acr login`.
    for path in FILES:
        workflow = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
        for name, job in workflow["jobs"].items():
            logged_in = False
            for step in job.get("steps", []):
                run = str(step.get("run", ""))
                logged_in = logged_in or "az acr login" in run
                refreshes = (
                    "pulumi refresh" in run
                    or "--refresh" in run
                    or (
                        str(step.get("uses", "")).startswith("pulumi/actions@")
                        and (
                            step.get("with", {}).get("refresh") in (True, "true")
                            or step.get("with", {}).get("command") == "refresh"
                        )
                    )
                )
                assert not refreshes or logged_in, f"{path.name} job {name} refreshes without login"


def test_setup_notes_name_every_role_the_program_grants_and_acr_push() -> None:
    from infra.components.compute import GRANTED_ROLES

    notes = (WORKFLOWS / "deploy-stack.yml").read_text(encoding="utf-8")
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    prerequisites = readme.split("### Prerequisites", 1)[1].split("\n### ", 1)[0]
    for role in [*GRANTED_ROLES, "AcrPush"]:
        assert role in notes, f"deploy-stack.yml setup notes do not mention {role}"
        assert role in prerequisites, f"README Prerequisites do not mention {role}"
