"""Local runner: `amlpipe run` executes a pipeline definition on this machine, in the training image
(docker SDK) or with local interpreters, and `amlpipe build` builds that image.

Arguments are resolved by the definitions core's shared resolver
(:func:`infra.definitions.refs.resolve_arguments`) with a local binder, so a step sees the same
argument list it gets on Azure ML, with local paths.
"""
