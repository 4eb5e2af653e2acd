"""The `azureml-pipelines:dataFactory` stack setting: whether, and with which factory, Azure Data
Factory starts the stack's pipelines.

Off unless the stack names a factory::

    azureml-pipelines:dataFactory:
      name: adf-churn-prod          # create this factory (a global name), or
      existing: adf-shared          # use this factory (its resource group: resourceGroupName)
      role: AzureML Data Scientist  # role of the factory identity on the workspace
      pipelines: [churn-train]      # only these definitions (default: every one that opts in)

Pure (pydantic, no pulumi): parsed once, before any resource, and every problem is reported with
the key path, e.g. ``azureml-pipelines:dataFactory.pipelines[1]: unknown pipeline 'churm-train'``.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from infra.definitions.loader import LoadedPipeline
from infra.settings import NAMESPACE, SettingsError

KEY = "dataFactory"

# Data Factory names: 3-63 letters, digits and '-', starting and ending with a letter or digit,
# globally unique (they are DNS names: <name>.<region>.datafactory.azure.net).
FACTORY_NAME_PATTERN = r"^[A-Za-z0-9](?:[A-Za-z0-9-]{1,61})[A-Za-z0-9]$"
FactoryName = Annotated[str, StringConstraints(pattern=FACTORY_NAME_PATTERN)]


class FactoryRole(StrEnum):
    """Built-in roles the factory identity may hold on the workspace (see README: the least one
    that can submit pipeline runs is AzureML Data Scientist; Contributor is the fallback)."""

    DATA_SCIENTIST = "AzureML Data Scientist"
    CONTRIBUTOR = "Contributor"

    @property
    def role_id(self) -> str:
        """The built-in role definition GUID (the same in every subscription)."""
        return _ROLE_IDS[self]


_ROLE_IDS = {
    FactoryRole.DATA_SCIENTIST: "f6c7c914-8db3-469d-8ca1-694a8f32e121",
    FactoryRole.CONTRIBUTOR: "b24988ac-6180-42a0-ab88-20f7382dd24c",
}


class DataFactorySettings(BaseModel):
    """The parsed setting; `enabled` is False when the stack names no factory."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: FactoryName | None = Field(default=None, description="Factory to create.")
    existing: FactoryName | None = Field(default=None, description="Existing factory to use.")
    resource_group_name: str | None = Field(
        default=None,
        alias="resourceGroupName",
        min_length=1,
        description="Resource group of the existing factory; default: the stack's.",
    )
    role: FactoryRole = FactoryRole.DATA_SCIENTIST
    pipelines: list[str] | None = Field(
        default=None, description="Definitions ADF runs; default: every one that opts in."
    )

    @property
    def enabled(self) -> bool:
        """Whether the stack uses a Data Factory at all."""
        return self.factory_name is not None

    @property
    def factory_name(self) -> str | None:
        """The factory's name, created or existing."""
        return self.name or self.existing


OFF = DataFactorySettings()


def _problem(path: Sequence[str | int], message: str) -> str:
    where = KEY
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else f".{part}"
    return f"{NAMESPACE}:{where}: {message}"


def _message(error: Any) -> str:
    if error["type"] == "extra_forbidden":
        allowed = ", ".join(f.alias or n for n, f in DataFactorySettings.model_fields.items())
        return f"unknown field; allowed fields: {allowed}"
    if error["type"] == "string_pattern_mismatch":
        return (
            f"{error['input']!r} is not a Data Factory name (3-63 letters, digits or '-', "
            "starting and ending with a letter or digit)"
        )
    if error["type"] == "enum":
        return f"{error['input']!r} is not allowed; allowed values: " + ", ".join(FactoryRole)
    return str(error["msg"])


def parse_data_factory(raw: str | None) -> DataFactorySettings:
    """The setting from its raw config text (JSON, as Pulumi passes objects); absent = off.

    Raises :class:`SettingsError` naming every bad field.
    """
    if raw is None or not raw.strip():
        return OFF
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        # Pulumi passes a plain string value as it is (objects and lists arrive as JSON).
        value = raw
    if not isinstance(value, dict):
        raise SettingsError(
            [_problem((), f"expected an object such as {{name: adf-...}}, found {value!r}")]
        )
    try:
        settings = DataFactorySettings.model_validate(value)
    except ValidationError as exc:
        raise SettingsError(
            [_problem(tuple(e["loc"]), _message(e)) for e in exc.errors()]
        ) from None
    problems = [
        _problem((key,), f"{value!r} has consecutive '-' (Data Factory names may not)")
        for key, value in (("name", settings.name), ("existing", settings.existing))
        if value is not None and "--" in value
    ]
    if settings.name and settings.existing:
        problems.append(_problem(("existing",), "give either name (create) or existing, not both"))
    if settings.resource_group_name and not settings.existing:
        problems.append(
            _problem(("resourceGroupName",), "only applies to an existing factory (existing:)")
        )
    if not settings.enabled and value:
        problems.append(
            _problem(
                (),
                "name the factory (name: to create one, existing: to use one) or leave "
                "the key out to turn Data Factory off",
            )
        )
    if settings.pipelines is not None:
        for index, pipeline in enumerate(settings.pipelines):
            if pipeline in settings.pipelines[:index]:
                problems.append(_problem(("pipelines", index), f"{pipeline!r} is listed twice"))
    if problems:
        raise SettingsError(problems)
    return settings


def factory_pipelines(
    settings: DataFactorySettings, definitions: Sequence[LoadedPipeline]
) -> tuple[LoadedPipeline, ...]:
    """The definitions the factory runs: those the setting lists (every one opting in by default).

    Raises :class:`SettingsError` for a listed pipeline that does not exist or opts out.
    """
    if not settings.enabled:
        return ()
    by_name = {loaded.spec.name: loaded for loaded in definitions}
    if settings.pipelines is None:
        return tuple(d for d in definitions if d.spec.data_factory.enabled)
    problems = []
    for index, pipeline in enumerate(settings.pipelines):
        loaded = by_name.get(pipeline)
        if loaded is None:
            close = difflib.get_close_matches(pipeline, sorted(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(
                _problem(
                    ("pipelines", index),
                    f"unknown pipeline {pipeline!r} (known pipelines: {known}){hint}",
                )
            )
        elif not loaded.spec.data_factory.enabled:
            problems.append(
                _problem(
                    ("pipelines", index),
                    f"pipeline {pipeline!r} opts out of Data Factory in its definition "
                    "(data_factory.enabled: false)",
                )
            )
    if problems:
        raise SettingsError(problems)
    return tuple(by_name[p] for p in settings.pipelines)


def read_data_factory() -> DataFactorySettings:
    """The setting of the running Pulumi program (absent or `{}`: off)."""
    import pulumi  # Imported here so the parser stays usable without the Pulumi SDK loaded.

    return parse_data_factory(pulumi.Config(NAMESPACE).get(KEY))
