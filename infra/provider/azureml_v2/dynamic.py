"""The two v2 objects no azure-native resource can manage, as small dynamic resources:

- :class:`PipelineComponentV2`: a definition's step components and pipeline component, registered
  by azure-ai-ml (which uploads each step's code folder). Versions are content hashes, so a new
  version is a replacement (create the new one, then archive the old one); an unchanged one is
  no diff at all.
- :class:`DefaultDeploymentV2`: the promotion switch. It points the batch endpoint (an azure-native
  resource that ignores its own `defaults`) at the newest deployment, remembers the deployments
  it promoted, and deletes this stack's deployments that fall out of `version_retention`.

Providers follow the house rules: typed props parsed once, nothing at import, clients made in the
provider host and authenticated from the environment (nothing secret pickled or stored), and
`diff` with `update` together. azure-ai-ml is imported only by :mod:`.service` and
:mod:`.entities`, inside functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    ResourceProvider,
    UpdateResult,
)
from pydantic import BaseModel, ConfigDict, Field

from infra.paths import project_path, project_root
from infra.provider.azureml_v2.plan import plan_pipeline
from infra.provider.pickling import reset_pickler

PROVIDER_KEY = "__provider"


class _Props(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WorkspaceProps(_Props):
    """Where the objects live; changing it replaces them."""

    subscription_id: str
    resource_group: str
    workspace_name: str


class ComponentInputs(WorkspaceProps):
    """Inputs of :class:`PipelineComponentV2`."""

    pipeline: str
    """Definition name."""
    code_root: str
    """Pipeline folder relative to the project root (where the provider host runs)."""
    component: str
    version: str
    images: dict[str, str]
    """Image key -> reference with digest."""
    environments: dict[str, str]
    """Image key -> registered environment version id."""
    steps: dict[str, dict[str, str]] = Field(default_factory=dict)
    """Readable summary per step (version, command, compute), for `preview --diff`."""
    owner: str = ""
    """This stack (`project/stack`): stamped on the components it registers, required of the
    ones it reuses (empty only in states written before ownership)."""


class ComponentOutputs(ComponentInputs):
    """Outputs: the inputs plus the registered pipeline component's id."""

    component_id: str
    created: list[str] = Field(default_factory=list)


class DefaultInputs(WorkspaceProps):
    """Inputs of :class:`DefaultDeploymentV2`."""

    endpoint: str
    deployment: str
    version_retention: int = Field(ge=1)
    owner: str
    endpoint_revision: str = ""
    """Digest of what the program sends the endpoint itself (description, tags, auth mode): an
    update of the endpoint (a PUT that carries no `defaults`, which the switch owns) changes it,
    so the switch re-asserts the default right after, in the same `pulumi up`. Empty in states
    written before it existed."""


class DefaultOutputs(DefaultInputs):
    """Outputs: the deployments kept (newest first) and the default before this one."""

    kept: list[str] = Field(default_factory=list)
    previous: str = ""


def _strip(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if k != PROVIDER_KEY}


def _service(props: WorkspaceProps) -> Any:
    # Imported here: the Pulumi program imports this module (for the resources) and must not
    # load azure-ai-ml through it.
    from infra.provider.azureml_v2.service import V2Service, Workspace

    return V2Service(Workspace(props.subscription_id, props.resource_group, props.workspace_name))


ServiceFactory = Callable[[WorkspaceProps], Any]

_WORKSPACE = ("subscription_id", "resource_group", "workspace_name")


def _changed(olds: dict[str, Any], news: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return sorted(k for k in keys if olds.get(k) != news.get(k))


class _V2Provider(ResourceProvider):
    serialize_as_secret_always = False

    def __init__(self, service: ServiceFactory | None = None) -> None:
        super().__init__()
        self._factory = service

    def __getstate__(self) -> dict[str, Any]:
        return {}  # only the class travels in the pickle

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__()  # type: ignore[misc]

    def service(self, props: WorkspaceProps) -> Any:
        """The v2 service for a workspace (tests pass a factory with a fake transport)."""
        return (self._factory or _service)(props)


class PipelineComponentProvider(_V2Provider):
    """Registers (get-or-create) a definition's components; archives a replaced version."""

    REPLACE_KEYS = (*_WORKSPACE, "component", "version", "pipeline")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Inputs pass as they are (the program built them from a validated definition)."""
        return CheckResult(inputs=news, failures=[])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Any change of name, version or workspace replaces; the rest is informative."""
        changed = _changed(_strip(olds), _strip(news), tuple(ComponentInputs.model_fields))
        replaces = [k for k in changed if k in self.REPLACE_KEYS]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=False, stables=[]
        )

    def _register(self, props: ComponentInputs, restore: bool = False) -> ComponentOutputs:
        from infra.definitions.loader import load_definitions

        folder = project_path(props.code_root)
        loaded = load_definitions([folder], project_root()).raise_if_invalid()
        (definition,) = [d for d in loaded if d.spec.name == props.pipeline]
        plan = plan_pipeline(definition, props.images)
        if plan.version != props.version:
            raise RuntimeError(
                f"pipeline {props.pipeline!r} changed on disk since the program ran (version "
                f"{plan.version}, expected {props.version}): run `pulumi up` again"
            )
        if not props.owner:
            raise RuntimeError(f"pipeline {props.pipeline!r}: no owner given (a program bug)")
        registered = self.service(props).register(
            plan, props.environments, props.owner, restore=restore
        )
        return ComponentOutputs(
            **props.model_dump(),
            component_id=registered.component_id,
            created=list(registered.created),
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Register the components (only the missing versions); a version that already exists
        (a revert) is adopted if this stack made it, and made active again."""
        outs = self._register(ComponentInputs.model_validate(_strip(props)), restore=True)
        return CreateResult(id_=outs.component_id, outs=outs.model_dump())

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Same version, new readable summary: registering again is a no-op get."""
        outs = self._register(ComponentInputs.model_validate(_strip(news)))
        return UpdateResult(outs=outs.model_dump())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Archive the pipeline component version (versions cannot be deleted; an archived one
        still runs for a retained deployment that names it)."""
        outs = ComponentInputs.model_validate(_strip(props))
        self.service(outs).archive_component(outs.component, outs.version)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The recorded state while the pipeline component version exists (versions are
        immutable: nothing else can drift); gone from the workspace, the resource is read as
        gone, so the next `up` registers it again."""
        outs = ComponentInputs.model_validate(_strip(props))
        if not self.service(outs).component_exists(outs.component, outs.version):
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs=props)


class DefaultDeploymentProvider(_V2Provider):
    """Points the endpoint at the newest deployment and prunes beyond the retention."""

    REPLACE_KEYS = (*_WORKSPACE, "endpoint", "owner")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Inputs pass as they are."""
        return CheckResult(inputs=news, failures=[])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """A new deployment, retention or endpoint revision is an update; another endpoint a
        replacement."""
        changed = _changed(_strip(olds), _strip(news), tuple(DefaultInputs.model_fields))
        replaces = [k for k in changed if k in self.REPLACE_KEYS]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=False, stables=[]
        )

    def _switch(self, props: DefaultInputs, kept_before: list[str]) -> DefaultOutputs:
        service = self.service(props)
        previous = service.set_default(props.endpoint, props.deployment)
        history = [props.deployment, *(d for d in kept_before if d != props.deployment)]
        # A default found on the endpoint joins the history only when the switch is created
        # (it may be a version to keep for rollback). Later, a default we did not promote was
        # set out of band: switching back must not count it against the retention, which
        # would prune one of the versions this stack keeps.
        if previous and previous not in history and not kept_before:
            history.insert(1, previous)
        for dropped in history[props.version_retention :]:
            service.delete_deployment(props.endpoint, dropped, props.owner)
        return DefaultOutputs(
            **props.model_dump(), kept=history[: props.version_retention], previous=previous
        )

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Switch the default to this deployment."""
        inputs = DefaultInputs.model_validate(_strip(props))
        outs = self._switch(inputs, [])
        return CreateResult(id_=f"{inputs.endpoint}/default", outs=outs.model_dump())

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Switch to the new deployment; prune what falls out of the retention."""
        before = DefaultOutputs.model_validate(_strip(olds)).kept
        outs = self._switch(DefaultInputs.model_validate(_strip(news)), before)
        return UpdateResult(outs=outs.model_dump())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Nothing to undo: the switch owns no object (the endpoint is azure-native's)."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The endpoint's live default as `deployment`: moved out of band, the next `up` sees a
        change and switches it back. The endpoint gone, the switch is gone too."""
        outs = DefaultOutputs.model_validate(_strip(props))
        live = self.service(outs).default_deployment(outs.endpoint)
        if live is None:
            return ReadResult(id_="", outs={})
        return ReadResult(id_=id_, outs={**props, "deployment": live})


@dataclass(frozen=True)
class V2Workspace:
    """Workspace coordinates as resource inputs."""

    subscription_id: pulumi.Input[str]
    resource_group: pulumi.Input[str]
    workspace_name: pulumi.Input[str]

    def props(self) -> dict[str, Any]:
        """As resource inputs."""
        return {
            "subscription_id": self.subscription_id,
            "resource_group": self.resource_group,
            "workspace_name": self.workspace_name,
        }


@dataclass(frozen=True)
class PipelineComponentV2Args:
    """Inputs of :class:`PipelineComponentV2` (see :class:`ComponentInputs`)."""

    workspace: V2Workspace
    pipeline: str
    code_root: str
    component: str
    version: pulumi.Input[str]
    images: pulumi.Input[dict[str, str]]
    environments: pulumi.Input[dict[str, str]]
    steps: pulumi.Input[dict[str, dict[str, str]]]
    owner: str


class PipelineComponentV2(Resource, module="azureml", name="PipelineComponentV2"):
    """A definition's pipeline component (and its step components), registered by content."""

    # Output attributes for type checkers only: see infra.provider.resources.
    if TYPE_CHECKING:
        component_id: pulumi.Output[str]
        created: pulumi.Output[list[str]]

    def __init__(
        self, name: str, args: PipelineComponentV2Args, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            **args.workspace.props(),
            "pipeline": args.pipeline,
            "code_root": args.code_root,
            "component": args.component,
            "version": args.version,
            "images": args.images,
            "environments": args.environments,
            "steps": args.steps,
            "owner": args.owner,
            "component_id": None,
            "created": None,
        }
        reset_pickler()  # see infra.provider.pickling
        super().__init__(PipelineComponentProvider(), name, props, opts)


@dataclass(frozen=True)
class DefaultDeploymentV2Args:
    """Inputs of :class:`DefaultDeploymentV2` (see :class:`DefaultInputs`)."""

    workspace: V2Workspace
    endpoint: pulumi.Input[str]
    deployment: pulumi.Input[str]
    version_retention: int
    owner: str
    endpoint_revision: str = ""
    """See :attr:`DefaultInputs.endpoint_revision`."""


class DefaultDeploymentV2(Resource, module="azureml", name="DefaultDeploymentV2"):
    """The batch endpoint's default deployment (the promotion switch), with pruning."""

    # Output attributes for type checkers only: see infra.provider.resources.
    if TYPE_CHECKING:
        kept: pulumi.Output[list[str]]
        previous: pulumi.Output[str]

    def __init__(
        self, name: str, args: DefaultDeploymentV2Args, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            **args.workspace.props(),
            "endpoint": args.endpoint,
            "deployment": args.deployment,
            "version_retention": args.version_retention,
            "owner": args.owner,
            "endpoint_revision": args.endpoint_revision,
            "kept": None,
            "previous": None,
        }
        reset_pickler()  # see infra.provider.pickling
        super().__init__(DefaultDeploymentProvider(), name, props, opts)
