"""The Azure ML v1 wing: the backend port (:mod:`infra.provider.port`) on azureml-core and
azureml-pipeline-core. Only this package imports azureml, and only inside functions (importing it
costs about 0.6 s and much memory; the Pulumi program imports the provider package and must never
pay for it). A test checks that no other module of `infra` imports azureml.

One module per job:

- :mod:`.auth`: credentials from the environment through azure-identity, as azureml's
  `TokenAuthentication`;
- :mod:`.retry`: errors classified by type and HTTP status; transient ones retried with
  exponential backoff (tenacity);
- :mod:`.compile`: a validated pipeline definition as azureml steps, environment and run
  configuration (no workspace needed);
- :mod:`.recurrence`: schedule recurrences both ways, with the start time that keeps a schedule
  from firing at creation;
- :mod:`.adapter`: :class:`~.adapter.AzureMLBackend`, the port's operations.

A second wing (e.g. Azure ML v2) sits beside this package and implements the same port; the
provider core picks the wing by the stack's `backend` setting.
"""
