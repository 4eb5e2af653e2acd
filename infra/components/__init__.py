"""Pulumi components of the stack, one per module: Workspace, ComputeCluster, TrainingImage.

Each is a ComponentResource `(name, args, opts=None)` with a frozen dataclass of arguments, type
token `azureml-pipelines:<module>:<Type>`, children named `<name>-<role>` parented to it.
"""

from infra.components.compute import ComputeCluster, ComputeClusterArgs
from infra.components.image import TrainingImage, TrainingImageArgs
from infra.components.workspace import Workspace, WorkspaceArgs

__all__ = [
    "ComputeCluster",
    "ComputeClusterArgs",
    "TrainingImage",
    "TrainingImageArgs",
    "Workspace",
    "WorkspaceArgs",
]
