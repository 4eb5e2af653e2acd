"""Azure ML v2 wing: the same pipeline definitions published as pipeline components behind batch
endpoints, with v2 schedules.

- :mod:`.plan` (pure, no azure-ai-ml): what v2 gets for a definition, as plain data: component
  and node names, each step's command line and ports, content-hash versions, endpoint and
  deployment names, and the located problems of definitions v2 cannot express. The Pulumi
  program may import it.
- :mod:`.entities` (azure-ai-ml, imported lazily inside functions): the plan turned into
  azure-ai-ml's own entities (CommandComponent, PipelineComponent, JobSchedule, ...) and their
  REST bodies through azure-ai-ml's own serialization. Only the provider side imports it.
"""
