"""Dynamic Pulumi provider for Azure ML v1 pipelines: endpoints with versions, and schedules.

Layers: typed props (:mod:`.props`) → backend port (:mod:`.port`) with the Azure ML adapter
(:mod:`.azureml_backend`) and a local SQLite one (:mod:`.local_backend`) → convergent operations
(:mod:`.operations`) → `ResourceProvider`s (:mod:`.provider`) → thin resources (:mod:`.resources`).
Nothing here has side effects at import, and azureml is only imported inside the Azure adapter's
methods.
"""
