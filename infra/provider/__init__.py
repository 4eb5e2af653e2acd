"""Dynamic Pulumi provider for Azure ML v1 pipelines: endpoints with versions, and schedules.

Layers: typed props (:mod:`.props`) → backend port (:mod:`.port`) with the Azure ML v1 wing
(:mod:`.azureml_v1`) and a local SQLite backend (:mod:`.local_backend`) → convergent operations
(:mod:`.operations`) → `ResourceProvider`s (:mod:`.provider`) → thin resources (:mod:`.resources`).
Nothing here has side effects at import, and azureml is only imported by the Azure ML v1 wing,
inside its functions. Another backend is another wing package beside it, implementing the port.
"""
