"""A published version's batch deployment as a dynamic resource that adopts its own leftovers.

Deployments are named by the version's content key and stay on Azure when a newer version
replaces them (for rollback, until :class:`~.dynamic.DefaultDeploymentV2` prunes them beyond the
retention), so they leave the stack's state while still existing. Reverting a change then asks for
a deployment that is already there. azure-native's `BatchDeployment` refuses to create an existing
resource ("cannot create already existing resource") and Pulumi cannot import into a dynamic
resource, so this resource's `create` does the convergence itself (:meth:`V2Service.
ensure_deployment`): the same deployment, made by this stack for the same component, is adopted;
another stack's, or one deploying something else, is refused with its name and what to do.

Delete leaves the deployment on Azure, like the `retain_on_delete` it replaces: the default
switch prunes it, and deleting the endpoint removes it with the endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pulumi
from pulumi.dynamic import (
    CheckResult,
    CreateResult,
    DiffResult,
    ReadResult,
    Resource,
    UpdateResult,
)
from pydantic import Field

from infra.provider.azureml_v2.dynamic import (
    _WORKSPACE,
    V2Workspace,
    WorkspaceProps,
    _changed,
    _strip,
    _V2Provider,
)
from infra.provider.pickling import reset_pickler


class DeploymentInputs(WorkspaceProps):
    """Inputs of :class:`BatchDeploymentV2`."""

    endpoint: str
    deployment: str
    component_id: str
    """ARM id of the pipeline component version deployed."""
    compute: str
    """Default compute of the pipeline jobs it starts."""
    owner: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class DeploymentOutputs(DeploymentInputs):
    """Outputs: the inputs, and whether create adopted an existing deployment."""

    adopted: bool = False


class BatchDeploymentProvider(_V2Provider):
    """Creates (or adopts) a published version's deployment; never deletes it."""

    REPLACE_KEYS = (*_WORKSPACE, "endpoint", "deployment", "component_id", "owner")

    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        """Inputs pass as they are (the program built them)."""
        return CheckResult(inputs=news, failures=[])

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        """Another component, name or endpoint is another deployment; the rest is in place."""
        changed = _changed(_strip(olds), _strip(news), tuple(DeploymentInputs.model_fields))
        replaces = [k for k in changed if k in self.REPLACE_KEYS]
        return DiffResult(
            changes=bool(changed), replaces=replaces, delete_before_replace=False, stables=[]
        )

    def _ensure(self, props: DeploymentInputs) -> DeploymentOutputs:
        from infra.provider.azureml_v2.service import DeploymentSpec

        created = self.service(props).ensure_deployment(
            DeploymentSpec(
                endpoint=props.endpoint,
                name=props.deployment,
                component_id=props.component_id,
                compute=props.compute,
                owner=props.owner,
                tags=props.tags,
                description=props.description,
            )
        )
        return DeploymentOutputs(**props.model_dump(), adopted=not created)

    def create(self, props: dict[str, Any]) -> CreateResult:
        """Create the deployment, or adopt this stack's identical one left on Azure."""
        inputs = DeploymentInputs.model_validate(_strip(props))
        outs = self._ensure(inputs)
        return CreateResult(id_=f"{inputs.endpoint}/{inputs.deployment}", outs=outs.model_dump())

    def update(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        """Only the description or tags can change under one name (compute and component are
        part of the content key that names it): recorded after checking the deployment is still
        this stack's; the service keeps what it was created with."""
        outs = self._ensure(DeploymentInputs.model_validate(_strip(news)))
        return UpdateResult(outs=outs.model_dump())

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        """Kept on Azure for rollback (see the module docstring)."""

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        """The recorded state."""
        return ReadResult(id_=id_, outs=props)


@dataclass(frozen=True)
class BatchDeploymentV2Args:
    """Inputs of :class:`BatchDeploymentV2` (see :class:`DeploymentInputs`)."""

    workspace: V2Workspace
    endpoint: pulumi.Input[str]
    deployment: str
    component_id: pulumi.Input[str]
    compute: str
    owner: str
    description: str = ""
    tags: dict[str, str] | None = None


class BatchDeploymentV2(Resource, module="azureml", name="BatchDeploymentV2"):
    """A published version's batch deployment (a pipeline component deployment)."""

    # Output attributes for type checkers only: see infra.provider.resources.
    if TYPE_CHECKING:
        adopted: pulumi.Output[bool]

    def __init__(
        self, name: str, args: BatchDeploymentV2Args, opts: pulumi.ResourceOptions | None = None
    ) -> None:
        props: dict[str, Any] = {
            **args.workspace.props(),
            "endpoint": args.endpoint,
            "deployment": args.deployment,
            "component_id": args.component_id,
            "compute": args.compute,
            "owner": args.owner,
            "description": args.description,
            "tags": dict(args.tags or {}),
            "adopted": None,
        }
        reset_pickler()  # see infra.provider.pickling
        super().__init__(BatchDeploymentProvider(), name, props, opts)
