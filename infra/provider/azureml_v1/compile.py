"""A validated pipeline definition as azureml objects: steps, parameters, environment and run
configuration. Needs no workspace, so tests check the real SDK objects it builds.

The run configuration spells out what the cluster must do instead of leaving it to SDK defaults
(which differ between SDK versions and from the service's): run in Docker (`RunConfiguration.docker`
defaults to off), the image as is from the stack's registry (no Dockerfile, no conda build),
pulled with the cluster's user-assigned identity (no registry password), the image's own Python
(user-managed dependencies), one node, no framework launcher.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.definitions.command import DEFAULT_INTERPRETERS, ScriptCommand, step_command
from infra.definitions.model import AnyStep, ParameterType, PipelineSpec, azure_output_name
from infra.definitions.refs import resolve_arguments
from infra.provider.port import BackendError
from infra.provider.port import RegistryIdentity as RegistryIdentityRecord

IMAGE_PYTHON = DEFAULT_INTERPRETERS["python"]
"""The interpreter a Python step runs with: the image's own `python` on its PATH (user-managed)."""
SHM_SIZE = "2g"


def registry_of(image_ref: str) -> str:
    """The registry host of an image reference (`acr.azurecr.io/name:tag` -> `acr.azurecr.io`)."""
    first = image_ref.split("/", 1)[0]
    return first if "/" in image_ref and ("." in first or ":" in first) else ""


def _parameter_default(kind: ParameterType, value: bool | int | float | str) -> Any:
    # The loader already checked the type; convert so an int parameter is not sent as 3.0.
    converters: dict[ParameterType, Callable[[Any], Any]] = {
        ParameterType.STRING: str,
        ParameterType.INT: int,
        ParameterType.FLOAT: float,
        ParameterType.BOOL: bool,
    }
    return converters[kind](value)


def make_environment(
    name: str, image_ref: str, identity: RegistryIdentityRecord | None = None
) -> Any:
    """An Environment running `image_ref` as is: no Dockerfile, no conda, no registry password.

    The registry is given by address only. With `identity` (resource id, client id of the
    cluster's user-assigned identity, which holds AcrPull on the registry) the image is pulled
    with that identity (`ContainerRegistry.registry_identity`); without it Azure ML uses the
    compute's identity for the workspace's own registry.
    """
    from azureml.core import Environment
    from azureml.core.container_registry import RegistryIdentity

    env = Environment(name=name)
    env.docker.base_image = image_ref
    env.docker.base_dockerfile = None
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = IMAGE_PYTHON
    registry = registry_of(image_ref)
    env.docker.base_image_registry.address = registry or None
    env.docker.base_image_registry.username = None
    env.docker.base_image_registry.password = None
    if registry and identity is not None:
        registry_identity = RegistryIdentity()
        registry_identity.resource_id = identity.resource_id
        registry_identity.client_id = identity.client_id or None
        env.docker.base_image_registry.registry_identity = registry_identity
    return env


def make_runconfig(compute: str, env: Any, variables: dict[str, str]) -> Any:
    """The run configuration of one step: Docker on, one node, plain process launch."""
    from azureml.core.runconfig import DockerConfiguration, RunConfiguration

    config = RunConfiguration()
    config.target = compute
    config.environment = env
    config.environment_variables = dict(variables)
    config.docker = DockerConfiguration(use_docker=True, shm_size=SHM_SIZE)
    config.framework = "Python"
    config.communicator = "None"
    config.node_count = 1
    return config


@dataclass
class AzureBinder:
    """Argument binder for :func:`infra.definitions.refs.resolve_arguments` (azureml objects)."""

    step: str
    parameters: dict[str, Any]
    outputs: dict[tuple[str, str], Any]

    def literal(self, value: str) -> Any:
        """Literal text, as is."""
        return value

    def parameter(self, name: str) -> Any:
        """The shared PipelineParameter."""
        return self.parameters[name]

    def step_input(self, step: str, output: str) -> Any:
        """An upstream output, mounted read-only as this step's input."""
        return (
            self.outputs[(step, output)].as_input(name=azure_output_name(step, output)).as_mount()
        )

    def step_output(self, name: str) -> Any:
        """This step's own output folder (uploaded when the step ends)."""
        return self.outputs[(self.step, name)]


@dataclass
class CompiledPipeline:
    """Steps and what they share, built from a definition without a workspace."""

    steps: list[Any]
    parameters: dict[str, Any]
    environments: dict[str, Any] = field(default_factory=dict)


def _make_step(
    spec: PipelineSpec, step: AnyStep, code_dir: Path, args: list[Any], runconfig: Any
) -> Any:
    from azureml.pipeline.steps import CommandStep as AzureCommandStep
    from azureml.pipeline.steps import PythonScriptStep

    common: dict[str, Any] = {
        "name": step.name,
        "compute_target": spec.step_compute(step),
        "runconfig": runconfig,
        "source_directory": str(code_dir),
        "allow_reuse": step.allow_reuse,
    }
    match step_command(step):
        case ScriptCommand(language="python", script=script):
            return PythonScriptStep(script_name=script, arguments=args, **common)
        case command:
            # Everything else (R: RScriptStep is deprecated) runs its command line in a
            # CommandStep, which splits the first item with shlex: quote it so it stays one word.
            words = command.argv()
            return AzureCommandStep(command=[shlex.quote(words[0]), *words[1:], *args], **common)


def compile_steps(
    spec: PipelineSpec,
    folder: Path,
    images: dict[str, str],
    identities: dict[str, RegistryIdentityRecord] | None = None,
) -> CompiledPipeline:
    """Build the azureml steps of a validated definition; `images` maps image keys to
    references, `identities` cluster names to the identity that pulls the image
    there."""
    from azureml.data import OutputFileDatasetConfig
    from azureml.pipeline.core import PipelineParameter

    parameters = {
        name: PipelineParameter(name=name, default_value=_parameter_default(p.type, p.default))
        for name, p in spec.parameters.items()
    }
    outputs = {
        (step.name, out): OutputFileDatasetConfig(name=azure_output_name(step.name, out))
        for step in spec.steps
        for out in step.outputs
    }
    compiled = CompiledPipeline([], parameters)
    by_name: dict[str, Any] = {}
    for step in spec.steps:
        image_key, compute = spec.step_image(step), spec.step_compute(step)
        if image_key not in images:
            raise BackendError(f"pipeline {spec.name!r}: no image reference for {image_key!r}")
        identity = (identities or {}).get(compute)
        # One environment per image, or per image and cluster when clusters pull the image with
        # their own identities.
        env_key = f"{image_key}@{compute}" if identity else image_key
        if env_key not in compiled.environments:
            env_name = f"{spec.name}-{env_key.replace('@', '-')}"
            compiled.environments[env_key] = make_environment(env_name, images[image_key], identity)
        args = resolve_arguments(step.arguments, AzureBinder(step.name, parameters, outputs))
        runconfig = make_runconfig(compute, compiled.environments[env_key], step.environment)
        azure_step = _make_step(spec, step, folder / step.code, args, runconfig)
        for other in step.after:
            azure_step.run_after(by_name[other])
        by_name[step.name] = azure_step
        compiled.steps.append(azure_step)
    return compiled
