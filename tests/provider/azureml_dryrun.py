"""The real azureml SDK with no network: its own dry-run service caller
(`azureml.pipeline.core._restclients.aeva.dryrun_service_caller`) wrapped as the workflow provider,
a workspace whose service discovery, compute list and default datastore are answered locally, and a
snapshot uploader that records what would be uploaded.

Everything between the adapter and the REST body is the SDK's own code: step compilation, graph
building, module and datasource creation, publish, endpoint versions and schedules. The dry-run
caller keeps entities in dicts; where it differs from the service on something the adapter relies
on, :class:`ServiceCaller` overrides it to answer as the service does (each override says what).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from azureml._restclient.service_context import ServiceContext, _ServiceKeys
from azureml.core import Workspace
from azureml.core.authentication import TokenAuthentication
from azureml.pipeline.core._aeva_provider import _AevaWorkflowProvider
from azureml.pipeline.core._restclients.aeva import models
from azureml.pipeline.core._restclients.aeva.dryrun_service_caller import DryRunServiceCaller
from azureml.pipeline.core._restclients.aeva.models.error_response import ErrorResponseException
from msrest import Deserializer

from infra.provider.azureml_v1.adapter import AzureMLBackend
from infra.provider.port import WorkspaceRef

WORKSPACE_ID = "00000000-0000-0000-0000-0000000000aa"
IDENTITY_ID = (
    "/subscriptions/sub/resourceGroups/rg/providers/Microsoft.ManagedIdentity/"
    "userAssignedIdentities/id-cpu-cluster"
)
IDENTITY_CLIENT_ID = "11111111-0000-0000-0000-00000000c1d0"
# A JWT the SDK can decode (it reads `tid` and `exp` from ARM tokens): header.payload.signature.
FAKE_TOKEN = (
    "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0."
    "eyJ0aWQiOiJ0ZW5hbnQiLCJleHAiOjQxMDI0NDQ4MDAsIm9pZCI6Im9pZCJ9."
)


class _Response:
    """What msrest reads from an HTTP response to build the SDK's error."""

    def __init__(self, status_code: int, message: str) -> None:
        self.status_code = status_code
        self.reason = message
        self.headers: dict[str, str] = {}
        self.text = json.dumps(self.json())

    def json(self) -> dict[str, Any]:
        return {"error": {"code": str(self.status_code), "message": self.reason}}

    def raise_for_status(self) -> None:
        import requests

        raise requests.HTTPError(self.reason)


def http_error(status: int, message: str = "not found") -> ErrorResponseException:
    """The exception azureml's REST client raises for an HTTP error answer."""
    deserialize = Deserializer({k: v for k, v in vars(models).items() if isinstance(v, type)})
    return ErrorResponseException(deserialize, _Response(status, message))


class ServiceCaller(DryRunServiceCaller):
    """The SDK's dry-run caller, answering like the service where the adapter depends on it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    # The service answers HTTP 404 for an unknown id or name (the dry-run raises KeyError or a
    # bare Exception('Not exist')).
    def get_pipeline_async(self, pipeline_id: str) -> Any:
        """GET published pipeline."""
        if pipeline_id not in self._pipeline_entities:
            raise http_error(404)
        return super().get_pipeline_async(pipeline_id)

    def get_schedule_async(self, schedule_id: str) -> Any:
        """GET schedule."""
        if schedule_id not in self._schedule_entities:
            raise http_error(404)
        return super().get_schedule_async(schedule_id)

    def get_pipeline_endpoint_by_id_async(self, endpoint_id: str | None = None) -> Any:
        """GET endpoint by id."""
        entity = self._pipeline_endpoint_entities.get(endpoint_id or "")
        if entity is None or entity.id != endpoint_id:
            raise http_error(404)
        return entity

    # By name, the service finds the endpoint currently called so (the dry-run indexes it by the
    # name it was created with, so archive's rename is not seen).
    def get_pipeline_endpoint_by_name_async(self, name: str | None = None) -> Any:
        """GET endpoint by name."""
        for key, entity in self._pipeline_endpoint_entities.items():
            if key == entity.id and entity.name == name:
                return entity
        raise http_error(404)

    # Lists filter on status as the service does (the dry-run returns everything).
    def get_all_published_pipelines(self, active_only: bool = True) -> Any:
        """GET published pipelines."""
        found = super().get_all_published_pipelines(active_only)
        return [p for p in found if not active_only or p.entity_status in ("0", "Active")]

    def get_all_schedules_async(self, active_only: bool) -> Any:
        """GET schedules."""
        found = super().get_all_schedules_async(active_only)
        return [s for s in found if not active_only or s.entity_status in ("0", "Active")]

    def endpoints(self) -> list[Any]:
        """Endpoint entities, once each (the dry-run stores each under its id and its name)."""
        return [e for k, e in self._pipeline_endpoint_entities.items() if k == e.id]

    def schedules(self) -> list[Any]:
        """Schedule entities as stored (the REST bodies the service received)."""
        return list(self._schedule_entities.values())

    def published(self) -> list[Any]:
        """Published pipeline entities."""
        return list(self._pipeline_entities.values())


@dataclass
class SnapshotUploader:
    """Records each code folder the SDK would upload as a snapshot, with its files."""

    uploads: dict[str, list[str]] = field(default_factory=dict)

    def upload(self, directory: str) -> str:
        """What `_AevaModuleSnapshotUploader.upload` does, without the upload."""
        snapshot = str(uuid.uuid4())
        root = Path(directory)
        self.uploads[snapshot] = sorted(
            str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()
        )
        return snapshot


class _OfflineServiceContext(ServiceContext):
    """Service URLs without asking the discovery service (nothing calls them: the dry-run
    caller stands in for the pipelines service)."""

    def _fetch_endpoints(self) -> dict[str, str]:
        return {key: f"http://127.0.0.1:9/{key}" for key in _ServiceKeys.get_discovery_keys()}


def _cluster_payload(name: str) -> dict[str, Any]:
    """An AmlCompute as Azure Resource Manager returns it (user-assigned identity, as the
    ComputeCluster component creates it)."""
    return {
        "id": f"/subscriptions/sub/resourceGroups/rg/providers/"
        f"Microsoft.MachineLearningServices/workspaces/ws/computes/{name}",
        "name": name,
        "location": "westeurope",
        "tags": None,
        "identity": {
            "type": "UserAssigned",
            "userAssignedIdentities": {IDENTITY_ID: {"clientId": IDENTITY_CLIENT_ID}},
        },
        "properties": {
            "computeType": "AmlCompute",
            "description": None,
            "resourceId": None,
            "provisioningState": "Succeeded",
            "provisioningErrors": None,
            "properties": {
                "vmSize": "STANDARD_DS3_V2",
                "vmPriority": "Dedicated",
                "scaleSettings": {
                    "maxNodeCount": 2,
                    "minNodeCount": 0,
                    "nodeIdleTimeBeforeScaleDown": "PT120S",
                },
                "subnet": None,
                "allocationState": "Steady",
                "currentNodeCount": 0,
            },
        },
    }


class OfflineWorkspace(Workspace):
    """A real `Workspace` object whose service lookups are answered locally."""

    def __init__(self, clusters: list[str], audiences: list[str]) -> None:
        def token(audience: str) -> str:
            audiences.append(audience)
            return FAKE_TOKEN

        super().__init__(
            "sub",
            "rg",
            "ws",
            auth=TokenAuthentication(token, cloud="AzureCloud"),
            _location="westeurope",
            _disable_service_check=True,
            _workspace_id=WORKSPACE_ID,
        )
        self._discovery_url_internal = "http://127.0.0.1:9/discovery"
        self._service_context = _OfflineServiceContext(
            "sub", "rg", "ws", WORKSPACE_ID, self._discovery_url_internal, self._auth
        )
        self._clusters = clusters

    @property
    def compute_targets(self) -> dict[str, Any]:
        """The stack's clusters (`Workspace.compute_targets` lists them from ARM)."""
        from azureml.core.compute import AmlCompute

        return {
            name: AmlCompute.deserialize(self, _cluster_payload(name)) for name in self._clusters
        }

    def get_default_datastore(self) -> Any:
        """The workspace blob store (outputs are written there)."""
        from azureml.data.azure_storage_datastore import AzureBlobDatastore

        return AzureBlobDatastore(self, "workspaceblobstore", "azureml-blobstore-x", "stws")


@dataclass
class DryRun:
    """The adapter on the SDK with the dry-run caller, and what it recorded."""

    backend: AzureMLBackend
    caller: ServiceCaller
    uploader: SnapshotUploader
    audiences: list[str]


def dry_run(clusters: list[str] | None = None) -> DryRun:
    """A fresh offline service and the adapter on it."""
    audiences: list[str] = []
    workspace = OfflineWorkspace(clusters or ["cpu-cluster"], audiences)
    caller = ServiceCaller()
    uploader = SnapshotUploader()
    provider = _AevaWorkflowProvider(caller, uploader, workspace)
    backend = AzureMLBackend(
        WorkspaceRef("sub", "rg", "ws"), azure_workspace=workspace, workflow_provider=provider
    )
    return DryRun(backend, caller, uploader, audiences)
