"""Stack settings: the `azureml-pipelines:*` config, one pydantic model for program and provider.

Defaults live in one place only, the `config:` block of `Pulumi.yaml` (the Pulumi CLI applies them;
:func:`provider_settings` applies them the same way for the provider host): every top-level field
below is required, and a test checks the model and `Pulumi.yaml` declare the same keys and types.
`Pulumi.<stack>.yaml` holds what a stack changes. Problems are reported all at once, each located
by its config key the way users write it, e.g.
``azureml-pipelines:clusters[0].maxNodes: 0 is too small; allowed values: integers >= 1``.

Values Azure would reject later (in the middle of a deployment) are rejected here, before any
resource: cluster names, a workspace closed to the public network the deploy itself needs, tags
beyond what a storage account takes, stack names that collide with another stack's resources,
Data Factory names.

:func:`parse_settings` is pure (raw config strings in, settings out) so it is unit tested without
Pulumi; :func:`read_settings` feeds it from the running program, :func:`provider_settings` from
the config the dynamic provider receives in `configure()`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Annotated, Any, Self, TypeVar, get_args

import annotated_types
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    WrapSerializer,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from infra.definitions.errors import KeyPath, format_key_path

if TYPE_CHECKING:
    from infra.definitions.loader import LoadedPipeline

NAMESPACE = "azureml-pipelines"

# Azure takes at most 15 tags on a storage account (50 elsewhere), tag names of at most 128
# characters there (512 elsewhere) and values of at most 256; names may not hold these characters.
# Every resource gets the same tags, so the strictest resource sets the limits.
MAX_TAGS = 15
MAX_TAG_NAME = 128
MAX_TAG_VALUE = 256
_TAG_NAME_FORBIDDEN = set("<>%&\\?/")
# Tags the program sets itself on every resource (compared case-insensitively, as Azure does).
STANDARD_TAGS = ("project", "stack", "managed-by")


def _rule(pattern: str, allowed: str) -> AfterValidator:
    """A string rule whose failure says what is allowed (pydantic would print the regex)."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError(
                "rule",
                "{value} is not allowed; allowed values: {allowed}",
                {"value": repr(value), "allowed": allowed},
            )
        return value

    return AfterValidator(check)


# The prefix goes into every derived resource name, so it must be safe for the strictest rule
# (storage accounts: lowercase letters and digits) once hyphens are dropped.
NamePrefix = Annotated[
    str,
    _rule(
        r"[a-z]([a-z0-9-]{0,30}[a-z0-9])?",
        "1-32 lowercase letters, digits or '-', starting with a letter and ending with a letter "
        "or digit",
    ),
]
# AmlCompute names: 2-16 letters, digits and '-', starting with a letter and ending with a letter
# or digit; Azure ML also refuses a name ending in '-<digits>' ("Numbers cannot be the ending of
# the name if the previous character is a minus symbol").
ClusterName = Annotated[
    str,
    _rule(
        r"[A-Za-z](?![A-Za-z0-9-]*-[0-9]+$)[A-Za-z0-9-]{0,14}[A-Za-z0-9]",
        "2-16 letters, digits or '-', starting with a letter, ending with a letter or digit, "
        "not ending in '-<digits>'",
    ),
]
ImageKey = Annotated[
    str, _rule(r"[a-z][a-z0-9-]{0,40}", "lowercase letters, digits and '-', starting with a letter")
]
VmSize = Annotated[str, _rule(r"[A-Za-z][A-Za-z0-9_]+", "an Azure VM size such as Standard_DS3_v2")]
NonEmpty = Annotated[str, Field(min_length=1)]


# Read-only mappings (settings are frozen all the way down), serialized as plain objects.
_Frozen = (
    AfterValidator(MappingProxyType),
    WrapSerializer(lambda value, handler: handler(dict(value))),
)


def _tag_name(name: str) -> str:
    if name.lower() in STANDARD_TAGS:
        raise PydanticCustomError(
            "rule", "{name} is set by the program itself; choose another name", {"name": repr(name)}
        )
    if not 1 <= len(name) <= MAX_TAG_NAME or _TAG_NAME_FORBIDDEN & set(name):
        raise PydanticCustomError(
            "rule",
            "{name} is not allowed; allowed values: 1-{limit} characters without < > % & \\ ? /",
            {"name": repr(name), "limit": MAX_TAG_NAME},
        )
    return name


TagName = Annotated[str, AfterValidator(_tag_name)]
TagValue = Annotated[str, Field(max_length=MAX_TAG_VALUE)]


class Priority(StrEnum):
    """AmlCompute VM priority (`AmlComputeProperties.vm_priority`)."""

    DEDICATED = "Dedicated"
    LOW_PRIORITY = "LowPriority"


class RegistrySku(StrEnum):
    """Azure Container Registry SKUs."""

    BASIC = "Basic"
    STANDARD = "Standard"
    PREMIUM = "Premium"


class NetworkAccess(StrEnum):
    """Public network access of the ML workspace."""

    ENABLED = "Enabled"
    DISABLED = "Disabled"


class Backend(StrEnum):
    """Where the pipeline resources are published: Azure ML, or the local file-backed store."""

    AZUREML = "azureml"
    LOCAL = "local"


class Api(StrEnum):
    """Which Azure ML API publishes the pipelines: SDK v1 pipeline endpoints, or v2 pipeline
    components behind batch endpoints (see the README, "Azure ML v1 or v2")."""

    V1 = "v1"
    V2 = "v2"


class PreviousApi(StrEnum):
    """During a cut-over, the API being retired (its endpoints stay, its schedules pause)."""

    NONE = ""
    V1 = "v1"
    V2 = "v2"


def _factory_name(value: str) -> str:
    # Data Factory names are DNS labels (<name>.<region>.datafactory.azure.net), globally unique.
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9-]{1,61}[A-Za-z0-9]", value):
        raise PydanticCustomError(
            "rule",
            "{value} is not a Data Factory name (3-63 letters, digits or '-', starting and "
            "ending with a letter or digit)",
            {"value": repr(value)},
        )
    if "--" in value:
        raise PydanticCustomError(
            "rule",
            "{value} has consecutive '-' (Data Factory names may not)",
            {"value": repr(value)},
        )
    return value


FactoryName = Annotated[str, AfterValidator(_factory_name)]


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


class _Model(BaseModel):
    """Frozen, closed (unknown fields are errors), camelCase config names, snake_case attributes."""

    model_config = ConfigDict(
        frozen=True, extra="forbid", alias_generator=to_camel, populate_by_name=True
    )


class ClusterSettings(_Model):
    """One AmlCompute cluster (an item of `clusters`).

    Defaults of item fields cannot live in `Pulumi.yaml` (Pulumi has no per-item defaults); the
    key's description there states them and a test checks they agree with these."""

    name: ClusterName
    vm_size: VmSize
    priority: Priority = Priority.DEDICATED
    max_nodes: Annotated[int, Field(ge=1)]
    min_nodes: Annotated[int, Field(ge=0)] = 0
    idle_seconds_before_scaledown: Annotated[int, Field(ge=60)] = 1800

    @field_validator("min_nodes")
    @classmethod
    def _not_above_max(cls, value: int, info: ValidationInfo) -> int:
        maximum = info.data.get("max_nodes")
        if maximum is not None and value > maximum:
            raise PydanticCustomError(
                "range",
                "{value} is above maxNodes {maximum}; allowed values: 0..{maximum}",
                {"value": value, "maximum": maximum},
            )
        return value


class ImageSettings(_Model):
    """One Docker image built from a context folder (a value of `images`, keyed by image key)."""

    context: NonEmpty
    dockerfile: NonEmpty = "Dockerfile"
    build_args: Annotated[Mapping[str, str], *_Frozen] = Field(
        default_factory=lambda: MappingProxyType({})
    )

    def context_dir(self, root: Path) -> Path:
        """The build context folder, absolute: `context` is relative to the project root."""
        return (root / self.context).resolve()

    def dockerfile_path(self, root: Path) -> Path:
        """The Dockerfile, absolute: `dockerfile` is relative to the context."""
        return self.context_dir(root) / self.dockerfile


class DataFactorySettings(_Model):
    """The `dataFactory` key: whether, and with which factory, Azure Data Factory starts the
    stack's pipelines. Off (`{}`, the project default) unless the stack names a factory::

        azureml-pipelines:dataFactory:
          name: adf-churn-prod          # create this factory (a global name), or
          existing: adf-shared          # use this factory (its resource group: resourceGroupName)
          role: AzureML Data Scientist  # role of the factory identity on the workspace
          pipelines: [churn-train]      # only these definitions (default: every one that opts in)

    Field defaults live here, not in `Pulumi.yaml`: the key's default there is the empty object
    (a stack file replaces it whole), and its description states these (a test checks them)."""

    name: FactoryName | None = None
    """Factory to create."""
    existing: FactoryName | None = None
    """Existing factory to use."""
    resource_group_name: NonEmpty | None = None
    """Resource group of the existing factory; default: the stack's."""
    role: FactoryRole = FactoryRole.DATA_SCIENTIST
    pipelines: tuple[str, ...] | None = None
    """Definitions ADF runs; default: every one that opts in."""

    @field_validator("existing")
    @classmethod
    def _not_both(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("name") is not None:
            raise PydanticCustomError("rule", "give either name (create) or existing, not both")
        return value

    @field_validator("resource_group_name")
    @classmethod
    def _only_existing(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("existing") is None and "existing" in info.data:
            raise PydanticCustomError("rule", "only applies to an existing factory (existing:)")
        return value

    @field_validator("pipelines")
    @classmethod
    def _listed_once(cls, pipelines: tuple[str, ...] | None) -> tuple[str, ...] | None:
        # Each repetition is reported at its own index, as users count list items.
        repeated = [
            InitErrorDetails(
                type=PydanticCustomError("rule", "{name} is listed twice", {"name": repr(p)}),
                loc=(index,),
                input=p,
            )
            for index, p in enumerate(pipelines or ())
            if p in (pipelines or ())[:index]
        ]
        if repeated:
            raise ValidationError.from_exception_data(cls.__name__, repeated)
        return pipelines

    @model_validator(mode="after")
    def _named_if_given(self) -> Self:
        if not self.enabled and self.model_fields_set:
            raise PydanticCustomError(
                "rule",
                "name the factory (name: to create one, existing: to use one) or leave the key "
                "out to turn Data Factory off",
            )
        return self

    @property
    def enabled(self) -> bool:
        """Whether the stack uses a Data Factory at all."""
        return self.factory_name is not None

    @property
    def factory_name(self) -> str | None:
        """The factory's name, created or existing."""
        return self.name or self.existing


def _as_written(value: DataFactorySettings, handler: Any, info: Any) -> Any:
    # Dumped as the user wrote it (only the fields set), so `{}` reads back as `{}`.
    return value.model_dump(mode=info.mode, by_alias=info.by_alias, exclude_unset=True)


class BackendSettings(_Model):
    """The part of the settings the dynamic provider needs (where pipelines are published)."""

    backend: Backend
    local_store_path: NonEmpty


class Settings(BackendSettings):
    """Everything the program, and the pipeline resources it creates, take from config.

    Paths (`pipeline_defs`, `local_store_path`, each image's `context`) are relative to the
    project root (the folder of Pulumi.yaml, :mod:`infra.paths`), not to the working directory.
    """

    project: str
    """Pulumi project name (not a config key)."""
    stack: str
    """Pulumi stack name (not a config key)."""
    location: NonEmpty
    name_prefix: NamePrefix
    resource_group_name: str
    """Existing resource group to deploy into; empty creates one (see :attr:`existing_group`)."""
    clusters: Annotated[tuple[ClusterSettings, ...], Field(min_length=1)]
    registry_sku: RegistrySku
    protect_data: bool
    """Pulumi `protect` on the resources that hold data: no destroy or replacement deletes them."""
    name_generation: Annotated[int, Field(ge=0, le=99)]
    """Raised after a destroy so soft-deleted names (workspace, key vault) are not reused."""
    key_vault_purge_protection: bool
    public_network_access: NetworkAccess
    tags: Annotated[Mapping[TagName, TagValue], *_Frozen]
    images: Annotated[Mapping[ImageKey, ImageSettings], *_Frozen]
    pipeline_defs: NonEmpty
    schedules_enabled: bool
    version_retention: Annotated[int, Field(ge=1)]
    api: Api
    api_previous: PreviousApi
    data_factory: Annotated[DataFactorySettings, WrapSerializer(_as_written)]

    @field_validator("api")
    @classmethod
    def _v2_on_azure(cls, value: Api, info: ValidationInfo) -> Api:
        # The local store models v1 endpoints only; v2 publishes to a real workspace.
        if value is Api.V2 and info.data.get("backend") is Backend.LOCAL:
            raise PydanticCustomError(
                "rule", "v2 needs backend azureml (the local store models Azure ML v1 only)"
            )
        return value

    @field_validator("api_previous")
    @classmethod
    def _differs_from_api(cls, value: PreviousApi, info: ValidationInfo) -> PreviousApi:
        if value is not PreviousApi.NONE and value.value == info.data.get("api"):
            raise PydanticCustomError(
                "rule",
                "{value} is also `api`; during a cut-over it names the other API (the one being "
                "retired), otherwise it is empty",
                {"value": value.value},
            )
        return value

    @field_validator("clusters")
    @classmethod
    def _unique_names(cls, clusters: tuple[ClusterSettings, ...]) -> tuple[ClusterSettings, ...]:
        # Azure compute names are case-insensitive within a workspace.
        names = [c.name.lower() for c in clusters]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PydanticCustomError(
                "unique",
                "cluster name {names} used twice; names must be unique (case-insensitive)",
                {"names": ", ".join(repr(n) for n in twice)},
            )
        return clusters

    @field_validator("public_network_access")
    @classmethod
    def _reachable(cls, value: NetworkAccess) -> NetworkAccess:
        # The program creates no private endpoints or VNet: a closed workspace could not be
        # reached by the deploy itself (publishing pipelines) nor by users' studio sessions.
        if value is NetworkAccess.DISABLED:
            raise PydanticCustomError(
                "unreachable",
                "Disabled is not supported: this program creates no private endpoint, so the "
                "deploy itself (publishing pipelines) could not reach the workspace; "
                "allowed values: Enabled",
            )
        return value

    @field_validator("tags")
    @classmethod
    def _tag_count(cls, tags: Mapping[str, str]) -> Mapping[str, str]:
        total = len(tags) + len(STANDARD_TAGS)
        if total > MAX_TAGS:
            raise PydanticCustomError(
                "tags",
                "{count} tags plus the {standard} the program sets make {total}; storage accounts "
                "take at most {limit}",
                {
                    "count": len(tags),
                    "standard": len(STANDARD_TAGS),
                    "total": total,
                    "limit": MAX_TAGS,
                },
            )
        return tags

    @property
    def existing_group(self) -> str | None:
        """The configured existing resource group, or None to create one."""
        return self.resource_group_name or None

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Names of the configured clusters, in config order."""
        return tuple(c.name for c in self.clusters)

    @property
    def apis(self) -> tuple[Api, ...]:
        """The APIs this stack publishes with: the active one first, then the retiring one."""
        if self.api_previous is PreviousApi.NONE:
            return (self.api,)
        return (self.api, Api(self.api_previous.value))

    def resource_tags(self) -> dict[str, str]:
        """Tags for every taggable resource: the configured ones plus project, stack and managed-by
        (configured tags cannot use those names, so resources can be traced back to this stack)."""
        return {**self.tags, "project": self.project, "stack": self.stack, "managed-by": "pulumi"}


_CONTEXT_FIELDS = ("project", "stack")
M = TypeVar("M", bound=BaseModel)


def _config_keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(
        f.alias or name
        for name, f in model.model_fields.items()
        if (f.alias or name) not in _CONTEXT_FIELDS
    )


MODEL_KEYS: tuple[str, ...] = _config_keys(Settings)
"""The config keys of the :class:`Settings` model."""
KEYS: tuple[str, ...] = MODEL_KEYS
"""Every config key the program reads (a test checks `Pulumi.yaml` declares exactly these)."""
BACKEND_KEYS: tuple[str, ...] = _config_keys(BackendSettings)


@dataclass(frozen=True)
class ConfigProblem:
    """One problem with one config key: the key path without namespace (``("clusters", 0,
    "maxNodes")``), and what is wrong there. Its text is the program's message line."""

    path: KeyPath
    message: str

    @property
    def key(self) -> str:
        """The located key, e.g. ``azureml-pipelines:dataFactory.pipelines[0]``."""
        return f"{NAMESPACE}:{format_key_path(self.path)}"

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


SettingProblem = ConfigProblem | str
"""A problem located by config key, or one about the stack as a whole (its name)."""


class SettingsError(ValueError):
    """One or more config values are missing or invalid; the message lists each with its key."""

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.located: tuple[SettingProblem, ...] = tuple(problems)
        """The problems as found: by key where they have one (`amlpipe validate --json`)."""
        self.problems = tuple(str(p) for p in problems)
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{listing}")


def _field_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> FieldInfo | None:
    """The field a validation error location points at (walking nested models by alias)."""
    field: FieldInfo | None = None
    current: type[BaseModel] | None = model
    for part in loc:
        if isinstance(part, int) or current is None:
            continue
        by_alias = {(f.alias or n): f for n, f in current.model_fields.items()}
        if part not in by_alias:
            continue  # a mapping key (an image key, a tag name)
        field = by_alias[part]
        current = _nested_model(field.annotation)
    return field


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if (found := _nested_model(arg)) is not None:
            return found
    return None


def _bound(field: FieldInfo | None) -> str:
    for meta in field.metadata if field else ():
        if isinstance(meta, annotated_types.Ge):
            return f"integers >= {meta.ge}"
    return "integers"


def _message(model: type[BaseModel], error: ErrorDetails) -> str:
    """A pydantic error as a user reads it: what was found and what is allowed."""
    kind, found, loc = error["type"], error.get("input"), tuple(error["loc"])
    ctx = error.get("ctx") or {}
    if kind == "missing":
        if len(loc) == 1:
            return f"missing; set it with `pulumi config set {NAMESPACE}:{loc[0]} <value>`"
        return "missing (required field)"
    if kind == "extra_forbidden":
        parent = _field_at(model, loc[:-1]) if len(loc) > 1 else None
        owner = _nested_model(parent.annotation) if parent else model
        # In declaration order: the order the README and the model's docstring show them.
        fields = [(f.alias or n) for n, f in (owner or model).model_fields.items()]
        return f"unknown field; allowed fields: {', '.join(fields)}"
    if kind == "model_type":
        example = _OBJECT_EXAMPLES.get(loc, "{...}")
        return f"expected an object such as {example}, found {found!r}"
    if kind == "enum":
        values = ", ".join(re.findall(r"'([^']*)'", str(ctx.get("expected", ""))))
        return f"{found!r} is not allowed; allowed values: {values}"
    if kind in ("bool_type", "bool_parsing"):
        return f"{found!r} is not a boolean; allowed values: true, false"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"{found!r} is not an integer; allowed values: {_bound(_field_at(model, loc))}"
    if kind == "greater_than_equal":
        return f"{found!r} is too small; allowed values: integers >= {ctx['ge']}"
    if kind == "too_short" and loc == ("clusters",):
        if found:  # pydantic counts only the valid items; the invalid ones are reported already
            return ""
        return "empty; at least one cluster is needed to run pipelines"
    if kind in ("string_too_short",) and found == "":
        return "empty; a value is needed"
    if kind in ("rule", "range", "unique", "unreachable", "tags"):
        return error["msg"]
    shown = repr(found) if len(repr(found)) <= 60 else repr(found)[:57] + "..."
    return f"{error['msg'][0].lower()}{error['msg'][1:]} (found {shown})"


# How an object-valued key looks, for the message when a stack gives something else.
_OBJECT_EXAMPLES: dict[tuple[int | str, ...], str] = {("dataFactory",): "{name: adf-...}"}


def _located(model: type[BaseModel], error: ErrorDetails) -> ConfigProblem:
    loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden" or loc[-1:] == ("[key]",):
        loc = tuple(p for p in loc if p != "[key]")
    return ConfigProblem(loc, _message(model, error))


def _decoded(
    model: type[BaseModel], raw: Mapping[str, str]
) -> tuple[dict[str, Any], dict[str, ConfigProblem]]:
    """Raw config strings as values: Pulumi passes objects, lists, numbers and booleans as
    JSON text. Text that is not JSON stays a string, so the model reports it with its type.
    Also returns the problems of keys that could not be decoded at all, by key."""
    values: dict[str, Any] = {}
    problems: dict[str, ConfigProblem] = {}
    for key in _config_keys(model):
        if key not in raw:
            continue
        text = raw[key]
        # Annotated[str, ...] fields report plain `str` as their annotation.
        annotation = model.model_fields[_attribute(model, key)].annotation
        if annotation is str or _is_str_enum(annotation):
            values[key] = text
            continue
        if not text.strip() and _nested_model(annotation) is annotation:
            # An object-valued key set to nothing (`pulumi config set dataFactory ""`) is the
            # empty object: for `dataFactory`, off.
            values[key] = {}
            continue
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError as exc:
            if text.lstrip()[:1] in ("{", "["):
                problems[key] = ConfigProblem((key,), f"not valid JSON ({exc.msg})")
            else:
                values[key] = text
    return values, problems


def _attribute(model: type[BaseModel], key: str) -> str:
    (name,) = [n for n, f in model.model_fields.items() if (f.alias or n) == key]
    return name


def _is_str_enum(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, StrEnum)


def _validate(
    model: type[M], raw: Mapping[str, str], context: Mapping[str, str]
) -> tuple[M | None, list[SettingProblem]]:
    values, undecoded = _decoded(model, raw)
    problems: list[SettingProblem] = list(undecoded.values())
    try:
        # Strict JSON validation: a quoted "4" in a list item is not silently read as the number
        # 4, nor 1.5 as 1; enums still take their values as JSON text carries them.
        document = json.dumps({**values, **context})
        return model.model_validate_json(document, strict=True), problems
    except ValidationError as exc:
        # A key that was not JSON is reported once, not again as missing.
        errors = [e for e in exc.errors() if e["loc"][0] not in undecoded]
        problems += [_located(model, e) for e in errors if _message(model, e)]
        return None, problems


def _unknown_keys(raw: Mapping[str, str], known: Iterable[str]) -> list[ConfigProblem]:
    """A key the settings do not read is a typo or a leftover: silently ignoring it would deploy
    something other than what the stack file says."""
    known = list(known)
    problems = []
    for key in sorted(set(raw) - set(known)):
        close = difflib.get_close_matches(key, known, n=1)
        hint = f"did you mean {close[0]}?" if close else f"known keys: {', '.join(sorted(known))}"
        problems.append(ConfigProblem((key,), f"unknown key; {hint}"))
    return problems


def stack_slug(stack: str) -> str:
    """What resource names make of a stack name (see infra.naming): two stacks with the same slug
    would deploy onto the same resource group, workspace and log names."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", stack.lower())).strip("-")


def _stack_problems(stack: str, other_stacks: Iterable[str]) -> list[str]:
    slug = stack_slug(stack)
    return [
        f"stack {stack!r}: maps to the same resource names as stack {other!r} "
        f"(Pulumi.{other}.yaml); rename one of them"
        for other in sorted(set(other_stacks) - {stack})
        if stack_slug(other) == slug
    ]


def _partial_structure_hint(problems: Sequence[SettingProblem], stack: str) -> list[str]:
    """Required fields missing inside a list or object value: almost always a `pulumi config set
    --path` on a stack file that lacked the key. The CLI edits the stack file alone, so it wrote
    only the path it was given, and that partial value replaced the whole project default."""
    keys = sorted(
        {
            str(p.path[0])
            for p in problems
            if isinstance(p, ConfigProblem) and p.message == "missing (required field)"
        }
    )
    if not keys:
        return []
    named = ", ".join(f"{NAMESPACE}:{key}" for key in keys)
    return [
        f"{named}: a structured value must be complete in the stack file; `pulumi config set "
        f"--path` on a Pulumi.{stack}.yaml without the key writes only the path it sets, which "
        f"replaces the whole default from Pulumi.yaml. Edit Pulumi.{stack}.yaml: copy the default "
        "from Pulumi.yaml and change what differs (then --path edits work), or set the whole value"
    ]


def parse_settings(
    raw: Mapping[str, str], project: str, stack: str, other_stacks: Iterable[str] = ()
) -> Settings:
    """Settings from raw config strings (key without namespace -> value as Pulumi passes it).

    `other_stacks` are the project's other stack names (from its stack files): a stack whose
    resource names would collide with one of them is refused. Raises :class:`SettingsError`
    listing every missing or invalid key.
    """
    settings, problems = _validate(Settings, raw, {"project": project, "stack": stack})
    problems += _unknown_keys(raw, KEYS)
    problems += _stack_problems(stack, other_stacks)
    problems += _partial_structure_hint(problems, stack)
    if problems or settings is None:
        raise SettingsError(problems)
    return settings


def image_problems(images: Mapping[str, ImageSettings], root: Path) -> list[ConfigProblem]:
    """Images whose build context folder or Dockerfile is missing (`root`: the project root), so
    that they are found before any resource is registered rather than when the image builds."""
    problems = []
    for key, image in images.items():
        where: KeyPath = ("images", key, "context")
        try:
            context = image.context_dir(root)
            if not context.is_dir():
                problems.append(ConfigProblem(where, f"build context {context} is not a folder"))
                continue
            where = ("images", key, "dockerfile")
            dockerfile = image.dockerfile_path(root)
            if not dockerfile.is_file():
                problems.append(ConfigProblem(where, f"{dockerfile} does not exist"))
        except (OSError, RuntimeError, ValueError) as exc:
            # A name too long, a symbolic link loop (RuntimeError), a NUL byte (ValueError), a
            # folder that cannot be read: the reason alone (the path may be what is too long).
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            problems.append(ConfigProblem(where, f"cannot be checked: {reason}"))
    return problems


def factory_problems(
    settings: DataFactorySettings, definitions: Sequence[LoadedPipeline], complete: bool = True
) -> list[ConfigProblem]:
    """What is wrong with `dataFactory.pipelines` for these definitions: a listed pipeline that
    does not exist or opts out of Data Factory. Empty when the factory is off or lists nothing.

    `complete=False` when `definitions` are only some of the stack's (`amlpipe validate --stack`
    given paths): a listed pipeline absent from them may be elsewhere, so only the ones present
    are checked."""
    if not settings.enabled or settings.pipelines is None:
        return []
    by_name = {loaded.spec.name: loaded for loaded in definitions}
    problems = []
    for index, pipeline in enumerate(settings.pipelines):
        path: KeyPath = ("dataFactory", "pipelines", index)
        loaded = by_name.get(pipeline)
        if loaded is None and not complete:
            continue
        if loaded is None:
            close = difflib.get_close_matches(pipeline, sorted(by_name), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            known = ", ".join(sorted(by_name)) or "none"
            problems.append(
                ConfigProblem(
                    path, f"unknown pipeline {pipeline!r} (known pipelines: {known}){hint}"
                )
            )
        elif not loaded.spec.data_factory.enabled:
            problems.append(
                ConfigProblem(
                    path,
                    f"pipeline {pipeline!r} opts out of Data Factory in its definition "
                    "(data_factory.enabled: false)",
                )
            )
    return problems


def factory_pipelines(
    settings: DataFactorySettings, definitions: Sequence[LoadedPipeline]
) -> tuple[LoadedPipeline, ...]:
    """The definitions the factory runs: those `dataFactory.pipelines` lists, by default every
    one whose definition opts in (`data_factory.enabled`); none when the factory is off.

    Raises :class:`SettingsError` for a listed pipeline that does not exist or opts out
    (:func:`factory_problems`).
    """
    if not settings.enabled:
        return ()
    if settings.pipelines is None:
        return tuple(d for d in definitions if d.spec.data_factory.enabled)
    problems = factory_problems(settings, definitions)
    if problems:
        raise SettingsError(problems)
    by_name = {loaded.spec.name: loaded for loaded in definitions}
    return tuple(by_name[p] for p in settings.pipelines)


def read_settings() -> Settings:
    """Settings of the running Pulumi program (its stack config, project defaults applied); the
    project's stack files name its other stacks."""
    # Imported here so parse_settings stays usable without the Pulumi SDK loaded.
    import pulumi
    from pulumi.runtime.config import CONFIG, get_config_env

    from infra.paths import project_root
    from infra.stack_files import stack_names

    prefix = f"{NAMESPACE}:"
    # Every key of the namespace (not only the known ones), so a misspelt key is reported.
    present = {k[len(prefix) :] for k in {*CONFIG.get(), *get_config_env()} if k.startswith(prefix)}
    config = pulumi.Config(NAMESPACE)
    raw = {key: value for key in {*KEYS, *present} if (value := config.get(key)) is not None}
    others = stack_names(project_root())
    return parse_settings(raw, pulumi.get_project(), pulumi.get_stack(), others)


def provider_settings(config: Mapping[str, str], root: Path | None = None) -> BackendSettings:
    """The provider's part of the settings from the config a dynamic provider's `configure()`
    receives (`namespace:key` -> raw value). Keys it lacks take their `Pulumi.yaml` default from
    the project at `root` (default: :func:`infra.paths.project_root`), as the CLI does for the
    program. Raises :class:`SettingsError`."""
    from infra.paths import project_root
    from infra.stack_files import declared_keys, raw_value

    root = root or project_root()
    raw = {
        key: raw_value(decl["default"])
        for key, decl in declared_keys(root).items()
        if key in BACKEND_KEYS and "default" in decl
    }
    prefix = f"{NAMESPACE}:"
    raw |= {
        key: value
        for full, value in config.items()
        if full.startswith(prefix) and (key := full[len(prefix) :]) in BACKEND_KEYS
    }
    settings, problems = _validate(BackendSettings, raw, {})
    if problems or settings is None:
        raise SettingsError(problems)
    return settings
