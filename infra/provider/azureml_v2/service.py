"""The v2 wing's calls to an Azure ML workspace, through azure-ai-ml's own operations (MLClient).

Only what no azure-native resource can do lives here: registering step components (azure-ai-ml
uploads each step's code folder as it registers the component) and the pipeline component, and
switching a batch endpoint's default deployment (the endpoint itself is an azure-native resource
that ignores its `defaults`), and deleting deployments that fell out of the retention.

Component versions are immutable and named by content hash, so "register" is get-or-create: an
unchanged definition costs a few GETs and creates nothing. Credentials come from the environment
(`DefaultAzureCredential`: service principal, workload identity / OIDC, managed identity, Azure
CLI), never from resource inputs. azure-core retries throttling and transient errors itself.
azure-ai-ml is imported inside methods only.

How azure-ai-ml 1.35.2 uploads a step's code folder (tested against a loopback blob service in
tests/azureml_v2/test_v2_code_upload.py): it looks the folder's content hash up among the
workspace's code versions and reuses a match (nothing uploaded); otherwise it asks the workspace
for a temporary container and a short-lived SAS (`startPendingUpload`; no datastore lookup, no
storage key), puts each file there, marks the first one `upload_status=completed`, and only then
registers the code version and the component naming it. A failed upload registers nothing; the
next `pulumi up` uploads that folder again into a new container. The SAS lives only in that
call: it is never in resource inputs, outputs or the pickled provider.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from infra.provider.azureml_v2 import entities as E
from infra.provider.azureml_v2.plan import PipelinePlan

OWNER_TAG = E.OWNER_TAG
COMPONENT_TAG = "amlpipe-component"
"""Tag on a batch deployment: the `name:version` of the pipeline component it deploys."""


class V2ServiceError(RuntimeError):
    """An Azure ML v2 call failed; the message says which and why."""


class NotAdoptable(V2ServiceError):
    """An object of the name this stack needs exists on Azure but is not this stack's, or not
    what this stack would create: it is left alone, and the message says what to do."""


@dataclass(frozen=True)
class Workspace:
    """Where the v2 objects live."""

    subscription_id: str
    resource_group: str
    workspace_name: str


def _not_found() -> type[BaseException]:
    exceptions = importlib.import_module("azure.core.exceptions")
    found: type[BaseException] = exceptions.ResourceNotFoundError
    return found


def default_client(workspace: Workspace) -> Any:
    """An MLClient on `workspace`, authenticated from the environment."""
    MLClient = importlib.import_module("azure.ai.ml").MLClient
    identity = importlib.import_module("azure.identity")

    credential = identity.DefaultAzureCredential(exclude_interactive_browser_credential=True)
    return MLClient(
        credential,
        workspace.subscription_id,
        workspace.resource_group,
        workspace.workspace_name,
        # Load-bearing: azure-ai-ml 1.35.2 only collects the per-file upload results of a code
        # folder while it draws its progress bar; without it a failed file leaves it waiting
        # for the upload count forever (`BlobStorageClient.upload`), a hung `pulumi up`.
        show_progress=True,
    )


@dataclass(frozen=True)
class DeploymentSpec:
    """A published version's batch deployment."""

    endpoint: str
    name: str
    component_id: str
    """ARM id of the pipeline component version it deploys."""
    compute: str
    owner: str
    tags: Mapping[str, str]
    description: str = ""


@dataclass(frozen=True)
class Registered:
    """What registering a plan did."""

    component_id: str
    """ARM id of the pipeline component version."""
    created: tuple[str, ...]
    """`name:version` of every component version created by this call (empty: no-op)."""


class V2Service:
    """Azure ML v2 operations on one workspace (one MLClient, made on first use)."""

    def __init__(
        self, workspace: Workspace, client_factory: Callable[[Workspace], Any] = default_client
    ) -> None:
        self.workspace = workspace
        self._factory = client_factory
        self._client: Any = None

    @property
    def client(self) -> Any:
        """The MLClient (made on first use)."""
        if self._client is None:
            self._client = self._factory(self.workspace)
        return self._client

    def _existing_component(self, name: str, version: str) -> Any | None:
        try:
            return self.client.components.get(name=name, version=version)
        except _not_found():
            return None

    def component_exists(self, name: str, version: str) -> bool:
        """Whether a component version is registered (an archived one counts)."""
        return self._existing_component(name, version) is not None

    def default_deployment(self, endpoint: str) -> str | None:
        """The endpoint's default deployment ('' when none), None when the endpoint is gone."""
        try:
            current = self.client.batch_endpoints.get(endpoint)
        except _not_found():
            return None
        return _default_of(current)

    def _adopt_component(self, found: Any, owner: str, expected: str, what: str) -> Any:
        """A component version that already exists (content-hash named) is reused only when
        this stack made it and it holds what this stack would register."""
        name, version = found.name, found.version
        stamped = (found.tags or {}).get(OWNER_TAG)
        if stamped != owner:
            raise NotAdoptable(
                f"component {name}:{version} exists in workspace {self.workspace.workspace_name} "
                f"but was not created by stack {owner!r} (owner: "
                f"{stamped or 'none recorded'}); component versions cannot be deleted, so give "
                "this stack its own workspace or rename the pipeline definition"
            )
        actual = _component_content(found)
        if actual != expected:
            raise NotAdoptable(
                f"component {name}:{version} exists with other content than {what} "
                f"({actual!r}, expected {expected!r}): the generated shape changed without a "
                "new version; this is a bug in this project (bump plan.SCHEME), not in your "
                "definition"
            )
        return found

    def register(
        self,
        plan: PipelinePlan,
        environments: Mapping[str, str],
        owner: str,
        restore: bool = False,
    ) -> Registered:
        """Make sure every step component and the pipeline component of `plan` exist, creating
        only the missing versions (step code is uploaded by azure-ai-ml as it creates them).

        `environments` maps image keys to registered environment ids (pinned by digest); `owner`
        (`project/stack`) is stamped on what is created, and required of what is reused.
        `restore` makes an existing pipeline component version active again: a version this
        stack replaced was archived, and a revert brings it back (azure-ai-ml's entities do not
        tell whether a version is archived, so the provider asks for it when it creates)."""
        created: list[str] = []
        refs: dict[str, str] = {}
        for step in plan.steps:
            found = self._existing_component(step.component, step.version)
            if found is None:
                component = E.command_component(
                    step, plan.images[step.image], environments.get(step.image), plan.name, owner
                )
                found = self._call(
                    f"register component {step.component}:{step.version}",
                    partial(self.client.components.create_or_update, component),
                )
                created.append(f"{step.component}:{step.version}")
            else:
                self._adopt_component(found, owner, step.command, f"step {step.node!r}")
            refs[step.node] = found.id or E.component_ref(step.component, step.version)
        pipeline = self._existing_component(plan.component, plan.version)
        if pipeline is None:
            entity = E.pipeline_component(plan, component_refs=refs, owner=owner)
            pipeline = self._call(
                f"register pipeline component {plan.component}:{plan.version}",
                lambda: self.client.components.create_or_update(entity),
            )
            created.append(f"{plan.component}:{plan.version}")
        else:
            expected = _nodes_content({node: refs[node] for node in refs})
            self._adopt_component(pipeline, owner, expected, f"pipeline {plan.name!r}")
            if restore:
                self._call(
                    f"restore component {plan.component}:{plan.version}",
                    lambda: self.client.components.restore(
                        name=plan.component, version=plan.version
                    ),
                )
        return Registered(str(pipeline.id), tuple(created))

    def archive_component(self, name: str, version: str) -> None:
        """Archive a pipeline component version (versions cannot be deleted; archived ones
        still run for deployments that name them). Missing: nothing to do."""
        try:
            self.client.components.archive(name=name, version=version)
        except _not_found():
            return

    def set_default(self, endpoint: str, deployment: str) -> str:
        """Make `deployment` the endpoint's default (the promotion switch); return the previous
        default ('' when none)."""
        current = self._call(
            f"get batch endpoint {endpoint}", lambda: self.client.batch_endpoints.get(endpoint)
        )
        previous = _default_of(current)
        if previous != deployment:
            current.defaults = {"deployment_name": deployment}
            self._call(
                f"set default deployment of {endpoint} to {deployment}",
                lambda: self.client.batch_endpoints.begin_create_or_update(current).result(),
            )
        return previous

    def _existing_deployment(self, endpoint: str, name: str) -> Any | None:
        try:
            return self.client.batch_deployments.get(name=name, endpoint_name=endpoint)
        except _not_found():
            return None

    def ensure_deployment(self, spec: DeploymentSpec) -> bool:
        """Make sure the deployment of a published version exists; return whether it was
        created (False: an existing one was adopted).

        Deployments are named by content key and kept on Azure after leaving the stack's state
        (for rollback, until pruned), so a revert meets its old deployment again: one this stack
        made for the same component is adopted as it is; anything else is refused, named."""
        found = self._existing_deployment(spec.endpoint, spec.name)
        if found is None:
            entity = E.component_deployment(
                spec.endpoint,
                spec.name,
                spec.component_id,
                spec.compute,
                {
                    **spec.tags,
                    OWNER_TAG: spec.owner,
                    COMPONENT_TAG: _name_version(spec.component_id),
                },
                spec.description,
            )
            self._call(
                f"create deployment {spec.endpoint}/{spec.name}",
                lambda: self.client.batch_deployments.begin_create_or_update(entity).result(),
            )
            return True
        where = f"batch deployment {spec.name!r} of endpoint {spec.endpoint!r}"
        stamped = (found.tags or {}).get(OWNER_TAG)
        if stamped != spec.owner:
            raise NotAdoptable(
                f"{where} exists but was not created by stack {spec.owner!r} (owner: "
                f"{stamped or 'none recorded'}); delete it (`az ml batch-deployment delete "
                f"--endpoint-name {spec.endpoint} --name {spec.name}`) if it is not needed, or "
                "give this stack its own endpoints (another prefix or stack name), then run "
                "`pulumi up` again"
            )
        # azure-ai-ml's `batch_deployments.get` drops a pipeline-component deployment's
        # componentId, so what a deployment runs is stamped in a tag when it is created.
        deployed = (found.tags or {}).get(COMPONENT_TAG, "")
        expected = _name_version(spec.component_id)
        if deployed != expected:
            raise NotAdoptable(
                f"{where} exists and belongs to this stack but deploys {deployed or 'nothing'}, "
                f"not {expected}; if it is not the endpoint's default, delete it "
                f"(`az ml batch-deployment delete --endpoint-name {spec.endpoint} --name "
                f"{spec.name}`) and run `pulumi up` again"
            )
        return False

    def delete_deployment(self, endpoint: str, name: str, owner: str) -> bool:
        """Delete one deployment of `endpoint` if this stack created it (its owner tag says so);
        return whether it was deleted. Missing, or someone else's: left alone."""
        try:
            found = self.client.batch_deployments.get(name=name, endpoint_name=endpoint)
        except _not_found():
            return False
        if (found.tags or {}).get(OWNER_TAG) != owner:
            return False
        self._call(
            f"delete deployment {endpoint}/{name}",
            lambda: self.client.batch_deployments.begin_delete(
                name=name, endpoint_name=endpoint
            ).result(),
        )
        return True

    @staticmethod
    def _call(what: str, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except Exception as exc:
            raise V2ServiceError(f"{what} failed: {exc}") from exc


def _component_content(component: Any) -> str:
    """What a registered component holds, in the form compared on adoption: a command
    component's command line, a pipeline component's nodes and the component each runs."""
    jobs = getattr(component, "jobs", None)
    if jobs:
        return _nodes_content({node: str(job.component) for node, job in jobs.items()})
    return str(getattr(component, "command", ""))


def _name_version(ref: str) -> str:
    """`name:version` of a component reference, whichever way azure-ai-ml spells it (ARM id,
    ``azureml:name:version`` or ``name:version``); ARM ids are case-insensitive."""
    if "/components/" in ref:
        name, _, version = ref.rsplit("/components/", 1)[1].partition("/versions/")
        return f"{name}:{version}".lower()
    return ref.removeprefix("azureml:").lower()


def _nodes_content(nodes: Mapping[str, str]) -> str:
    return ";".join(f"{node}={_name_version(ref)}" for node, ref in sorted(nodes.items()))


def _default_of(endpoint: Any) -> str:
    defaults = endpoint.defaults
    if defaults is None:
        return ""
    # Read back from the service it is azure-ai-ml's REST model (an attribute); set by hand, a
    # dict keyed like the entity's constructor argument.
    named = getattr(defaults, "deployment_name", None)
    if named is None and isinstance(defaults, Mapping):
        named = defaults.get("deployment_name")
    return str(named or "")
