"""The step-code upload, end to end: azure-ai-ml's real operations against the fake ARM service,
and the real azure-storage-blob client over HTTP against the loopback blob stand-in.

What azure-ai-ml 1.35.2 does for a workspace component's code folder (read from its source):
list code versions by content hash (`GET codes/{random}/versions?hash=&hashVersion=`), reuse one
if found; else `POST .../startPendingUpload` for a temporary container and its SAS (no datastore
lookup, no `listSecrets`), then with azure-storage-blob: HEAD the indicator blob (the first file),
Put Blob each file (`If-None-Match: *`, `Content-MD5`), set the indicator's metadata
(`upload_status=completed`, the code asset's name and version), and only then PUT the code
version (codeUri = the folder's URL, hash in its properties) and the component naming it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.ai.ml import MLClient
from pulumi.dynamic.dynamic import serialize_provider

from infra.definitions.errors import SpecErrors
from infra.definitions.hashing import iter_tree
from infra.definitions.loader import LoadedPipeline
from infra.provider.azureml_v2.dynamic import PipelineComponentProvider, WorkspaceProps
from infra.provider.azureml_v2.plan import PipelinePlan, plan_pipeline, v2_problems
from infra.provider.azureml_v2.service import V2Service, V2ServiceError, Workspace
from tests.azureml_v2.fake_arm import FakeArm, FakeCredential
from tests.azureml_v2.fake_blob import FakeBlobService, Fault, Request
from tests.azureml_v2.v2_fixtures import IMAGES, TWO_STEPS

WS = Workspace("00000000-0000-0000-0000-000000000000", "rg", "ws")
ENVIRONMENTS = {"training": "azureml:amlpipe-training:1"}
OWNER = "azureml-pipelines/dev"

FILES = {
    "steps/prep/prep.py": "import helpers\nprint(1)\n",
    "steps/prep/helpers.py": "X = 1\n",
    "steps/prep/conf/settings.json": '{"a": 1}\n',
    "steps/train/train.R": "cat(1)\n",
    "steps/train/lib/util.R": "f <- function() 1\n",
}


@pytest.fixture
def blobs() -> Iterator[FakeBlobService]:
    service = FakeBlobService().start()
    yield service
    service.stop()


def _ids(ws: Workspace) -> tuple[str, str, str]:
    return ws.subscription_id, ws.resource_group, ws.workspace_name


def _service(arm: FakeArm) -> V2Service:
    return V2Service(
        WS,
        lambda ws: MLClient(FakeCredential(), *_ids(ws), transport=arm),
    )


def _local_files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _uploaded_code(arm: FakeArm, blobs: FakeBlobService, component_path: str) -> dict[str, bytes]:
    """What a registered component's code points at: the folder's blobs, checked complete.

    Fails when the code version is missing, its upload was never confirmed on the indicator blob,
    or the component names code that is not there."""
    spec = arm.objects[component_path]["properties"]["componentSpec"]
    code_path = "/codes/" + spec["code"].split("/codes/", 1)[1]
    code = arm.objects[code_path]["properties"]
    assert "?" not in code["codeUri"], "a code URI never carries a SAS"
    container, folder = code["codeUri"].split(f"{blobs.account_url}/", 1)[1].split("/", 1)
    files = blobs.folder(container, folder)
    indicator = f"{folder}/{sorted(files)[0]}"
    metadata = blobs.containers[container][indicator].metadata
    assert metadata.get("upload_status") == "completed", f"{indicator} never confirmed"
    assert (metadata["name"], metadata["version"]) == tuple(code_path.split("/")[2::2])
    return files


def _component(plan: PipelinePlan, node: str) -> str:
    step = next(s for s in plan.steps if s.node == node)
    return f"/components/{step.component}/versions/{step.version}"


def _assert_every_component_has_complete_code(
    arm: FakeArm, blobs: FakeBlobService, plan: PipelinePlan
) -> None:
    for step in plan.steps:
        path = _component(plan, step.node)
        if path in arm.objects:
            assert _uploaded_code(arm, blobs, path) == _local_files(step.code)


def test_first_publish_uploads_each_step_folder_once_with_its_content(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    registered = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert arm.unexpected == [] and blobs.unexpected == []
    assert len(registered.created) == 3
    # One temporary container per step folder, each file put once, one confirmation each.
    pending = [p for m, p in arm.writes() if p.endswith("/startPendingUpload")]
    assert len(pending) == 2
    puts = sorted((r.container, r.blob) for r in blobs.ops("put_blob"))
    assert len(puts) == len(set(puts)) == len(FILES)
    assert len({c for c, _ in puts}) == 2
    assert len(blobs.ops("set_metadata")) == 2
    # Every put was conditional (never overwrites) and carried the MD5 the service checks.
    assert all(
        r.headers.get("if-none-match") == "*" and "content-md5" in r.headers
        for r in blobs.ops("put_blob")
    )
    for node in ("prep", "train"):
        step = next(s for s in plan.steps if s.node == node)
        assert _uploaded_code(arm, blobs, _component(plan, node)) == _local_files(step.code)
    # The confirmation comes after the last file of its folder, the code version after that.
    for container in {c for c, _ in puts}:
        ops = [r.op for r in blobs.requests if r.container == container]
        assert ops[-1] == "set_metadata" and ops.count("set_metadata") == 1


def test_a_second_publish_of_the_same_content_uploads_nothing(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    _service(arm).register(plan, ENVIRONMENTS, OWNER)
    arm.requests.clear()
    blobs.requests.clear()
    again = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert again.created == ()
    assert blobs.requests == []
    assert arm.writes() == []


def test_the_same_folder_in_a_new_component_version_reuses_its_uploaded_code(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    # The image changes (new step versions) but no code: the code is found by its hash.
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    _service(arm).register(plan, ENVIRONMENTS, OWNER)
    blobs.requests.clear()
    moved = {"training": IMAGES["training"].replace("ab" * 32, "cd" * 32)}
    newer = plan_pipeline(write_pipeline(TWO_STEPS, FILES), moved)
    assert len(_service(arm).register(newer, ENVIRONMENTS, OWNER).created) == 3
    assert blobs.requests == []
    _assert_every_component_has_complete_code(arm, blobs, newer)


def test_a_changed_script_uploads_only_its_folder(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    arm = FakeArm(blobs=blobs)
    _service(arm).register(
        plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES), ENVIRONMENTS, OWNER
    )
    blobs.requests.clear()
    changed = {**FILES, "steps/train/train.R": "cat(2)\n"}
    plan = plan_pipeline(write_pipeline(TWO_STEPS, changed), IMAGES)
    _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert sorted(r.blob for r in blobs.ops("put_blob")) == ["train/lib/util.R", "train/train.R"]
    assert _uploaded_code(arm, blobs, _component(plan, "train"))["train.R"] == b"cat(2)\n"
    _assert_every_component_has_complete_code(arm, blobs, plan)
    assert blobs.unexpected == []


def _fail(op: str, blob_suffix: str, fault: Fault) -> Callable[[Request], Fault | None]:
    def inject(request: Request) -> Fault | None:
        return fault if request.op == op and request.blob.endswith(blob_suffix) else None

    return inject


@pytest.mark.timeout(120)  # azure-ai-ml waits forever on a failed file when progress is off
@pytest.mark.parametrize(
    ("op", "blob"),
    [("put_blob", "train/train.R"), ("set_metadata", "train/lib/util.R")],
    ids=["a-file-refused", "the-confirmation-refused"],
)
def test_a_failed_upload_registers_nothing_on_it_and_the_next_up_repairs_it(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService, op: str, blob: str
) -> None:
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    # The SAS expiring mid-upload: not retried by the client, the upload fails.
    blobs.fault = _fail(op, blob, Fault(403, "AuthenticationFailed"))
    with pytest.raises(V2ServiceError, match=r"register component demo__train:") as failed:
        _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert not any(sig in str(failed.value) for sig in blobs.signatures.values())
    # Neither the code version of that folder nor anything naming it was registered.
    train = next(s for s in plan.steps if s.node == "train")
    assert _component(plan, "train") not in arm.objects
    assert f"/components/demo/versions/{plan.version}" not in arm.objects
    assert len([k for k in arm.objects if k.startswith("/codes/")]) == 1  # prep's only
    _assert_every_component_has_complete_code(arm, blobs, plan)

    blobs.fault = None
    blobs.requests.clear()
    registered = _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert registered.created == (f"demo__train:{train.version}", f"demo:{plan.version}")
    # Only the failed folder was uploaded again, whole, into a fresh temporary container.
    assert sorted(r.blob for r in blobs.ops("put_blob")) == ["train/lib/util.R", "train/train.R"]
    _assert_every_component_has_complete_code(arm, blobs, plan)
    assert arm.unexpected == [] and blobs.unexpected == []


@pytest.fixture
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """azure-storage-blob's own retry decisions, without its 15-second back-off."""
    policies = pytest.importorskip("azure.storage.blob._shared.policies")
    monkeypatch.setattr(policies.ExponentialRetry, "get_backoff_time", lambda self, settings: 0)


def _publish_in_thread(service: V2Service, plan: PipelinePlan) -> BaseException | None:
    outcome: list[BaseException | None] = []

    def publish() -> None:
        try:
            service.register(plan, ENVIRONMENTS, OWNER)
            outcome.append(None)
        except BaseException as exc:  # reported to the test thread
            outcome.append(exc)

    worker = threading.Thread(target=publish, daemon=True)
    worker.start()
    worker.join(100)
    assert outcome, "the upload hung"
    return outcome[0]


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("quick_retries")
def test_a_transfer_cut_off_once_is_retried_by_the_client(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    cut: list[Request] = []

    def once(request: Request) -> Fault | None:
        if request.op == "put_blob" and request.blob == "prep/helpers.py" and not cut:
            cut.append(request)
            return Fault(drop=True)
        return None

    blobs.fault = once
    assert _publish_in_thread(_service(arm), plan) is None
    assert [r.blob for r in blobs.ops("put_blob")].count("prep/helpers.py") == 2
    _assert_every_component_has_complete_code(arm, blobs, plan)
    assert blobs.unexpected == []


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("quick_retries")
def test_a_transfer_that_keeps_failing_ends_the_up_without_hanging_and_is_repaired(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    plan = plan_pipeline(write_pipeline(TWO_STEPS, FILES), IMAGES)
    arm = FakeArm(blobs=blobs)
    blobs.fault = _fail("put_blob", "prep/helpers.py", Fault(drop=True))
    failed = _publish_in_thread(_service(arm), plan)
    assert isinstance(failed, V2ServiceError), failed
    assert "register component demo__prep:" in str(failed)
    assert not [k for k in arm.objects if k.startswith(("/codes/", "/components/"))]
    blobs.fault = None
    assert _publish_in_thread(_service(arm), plan) is None
    _assert_every_component_has_complete_code(arm, blobs, plan)


def test_no_sas_reaches_the_provider_outputs_or_its_pickle(
    write_pipeline: Callable[..., LoadedPipeline],
    blobs: FakeBlobService,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loaded = write_pipeline(TWO_STEPS, FILES)
    root = loaded.folder.parents[1]
    monkeypatch.chdir(root)  # the provider host runs in the project folder
    plan = plan_pipeline(loaded, IMAGES)
    arm = FakeArm(blobs=blobs)

    def factory(props: WorkspaceProps) -> V2Service:
        return _service(arm)

    provider = PipelineComponentProvider(factory)
    inputs: dict[str, Any] = {
        "subscription_id": WS.subscription_id,
        "resource_group": WS.resource_group,
        "workspace_name": WS.workspace_name,
        "pipeline": "demo",
        "code_root": "pipeline_defs/demo",
        "component": plan.component,
        "version": plan.version,
        "images": dict(IMAGES),
        "environments": ENVIRONMENTS,
        "steps": {s.node: {"version": s.version} for s in plan.steps},
        "owner": OWNER,
    }
    created = provider.create(inputs)
    assert blobs.ops("put_blob"), "the upload went through the stand-in"
    state = json.dumps({"id": created.id, "outs": created.outs})
    pickled = serialize_provider(provider)
    for signature in blobs.signatures.values():
        assert signature not in state and signature not in pickled
    assert "sig=" not in state and "sig=" not in pickled
    assert blobs.account_url not in state  # not even the temporary container's address


def test_the_real_client_keeps_the_progress_bar_a_failed_file_depends_on() -> None:
    # Without it azure-ai-ml never collects a failed file's error and waits for it forever.
    from infra.provider.azureml_v2.service import default_client

    assert default_client(WS)._operation_config.show_progress is True


def test_a_file_above_the_single_put_size_goes_up_in_blocks_and_is_committed_whole(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    loaded = write_pipeline(TWO_STEPS, FILES)
    big = loaded.folder / "steps" / "train" / "model.bin"
    # Just above azure-storage-blob's 64 MiB single-put limit: staged blocks, then a block list.
    big.write_bytes(bytes(range(256)) * (64 * 4096 + 1))
    plan = plan_pipeline(loaded, IMAGES)
    arm = FakeArm(blobs=blobs)
    _service(arm).register(plan, ENVIRONMENTS, OWNER)
    assert {r.blob for r in blobs.ops("put_block")} == {"train/model.bin"}
    assert [r.blob for r in blobs.ops("put_block_list")] == ["train/model.bin"]
    assert _uploaded_code(arm, blobs, _component(plan, "train"))["model.bin"] == big.read_bytes()
    assert blobs.unexpected == []


GITIGNORED = """\
    name: demo
    experiment: demo
    compute: cpu-cluster
    steps:
      - name: prep
        kind: python
        code: steps/prep
        script: prep.py
    """


def test_a_folder_whose_gitignore_azure_ml_would_apply_is_refused_before_any_upload(
    write_pipeline: Callable[..., LoadedPipeline],
) -> None:
    # azure-ai-ml falls back to .gitignore when a folder has no .amlignore; the content hash and
    # local runs follow .amlignore only, so lookup.csv would be missing on Azure alone. The
    # definitions core refuses it (for v1 too: azureml-core falls back the same way).
    files = {
        "steps/prep/prep.py": "print(open('lookup.csv').read())\n",
        "steps/prep/lookup.csv": "a,b\n",
        "steps/prep/.gitignore": "*.csv\n",
    }
    with pytest.raises(SpecErrors) as refused:
        write_pipeline(GITIGNORED, files)
    (problem,) = refused.value.errors
    assert (problem.path, problem.line) == (("steps", 0, "code"), 7)
    assert "has a .gitignore and no .amlignore" in problem.message
    # azure-ai-ml's own choice of ignore file for that folder, which the rule is about.
    from azure.ai.ml._utils._asset_utils import get_ignore_file

    folder = Path(problem.file).parent / "steps" / "prep"
    assert type(get_ignore_file(folder)).__name__ == "GitIgnoreFile"


def test_with_an_amlignore_the_folder_goes_up_as_hashed_gitignore_or_not(
    write_pipeline: Callable[..., LoadedPipeline], blobs: FakeBlobService
) -> None:
    files = {
        "steps/prep/prep.py": "print(open('lookup.csv').read())\n",
        "steps/prep/lookup.csv": "a,b\n",
        "steps/prep/notes.tmp": "scratch\n",
        "steps/prep/.gitignore": "*.csv\n",
        "steps/prep/.amlignore": "*.tmp\n",
    }
    loaded = write_pipeline(GITIGNORED, files)
    assert v2_problems([loaded]) == []
    plan = plan_pipeline(loaded, IMAGES)
    arm = FakeArm(blobs=blobs)
    _service(arm).register(plan, ENVIRONMENTS, OWNER)
    uploaded = _uploaded_code(arm, blobs, _component(plan, "prep"))
    hashed = {path for path, _ in iter_tree(plan.steps[0].code)}
    assert set(uploaded) == hashed
    assert "lookup.csv" in uploaded and "notes.tmp" not in uploaded
