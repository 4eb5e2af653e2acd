"""Stack settings: the `azureml-pipelines:*` config read once into a frozen, typed object.

Defaults live in one place only, the `config:` block of `Pulumi.yaml` (the Pulumi CLI applies them);
`Pulumi.<stack>.yaml` holds what a stack changes. This module checks the merged values and reports
every bad key at once, each with the key, what was found and what is allowed, e.g.
``azureml-pipelines:registrySku: 'Cheap' is not allowed; allowed values: Basic, Standard, Premium``.

:func:`parse_settings` is pure (a mapping of raw config strings in, settings out) so it is unit
tested without Pulumi; :func:`read_settings` feeds it from the running Pulumi program's config.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, TypeVar

NAMESPACE = "azureml-pipelines"

# Every key of the agreed config, in the order Pulumi.yaml declares them. A test checks that
# Pulumi.yaml declares exactly these, so the two cannot drift apart.
KEYS: tuple[str, ...] = (
    "location",
    "namePrefix",
    "resourceGroupName",
    "clusters",
    "registrySku",
    "keyVaultPurgeProtection",
    "publicNetworkAccess",
    "tags",
    "images",
    "pipelineDefs",
    "schedulesEnabled",
    "versionRetention",
    "backend",
    "localStorePath",
    # Parsed by infra.data_factory_settings (its own model; off unless a factory is named).
    "dataFactory",
)

# The prefix goes into every derived resource name, so it must be safe for the strictest rule
# (storage accounts: lowercase letters and digits) once hyphens are dropped.
_PREFIX = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$")
# AmlCompute names: letters, digits and '-', starting with a letter. Azure also rejects a name
# ending in '-<digits>', and older API versions cap clusters at 16 characters, so we do too.
_CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,15}$")
_CLUSTER_RULE = "2-16 letters, digits or '-', starting with a letter"
_IMAGE_KEY = re.compile(r"^[a-z][a-z0-9-]{0,40}$")
_VM_SIZE = re.compile(r"^[A-Za-z][A-Za-z0-9_]+$")

E = TypeVar("E", bound=StrEnum)


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


@dataclass(frozen=True)
class ClusterSettings:
    """One AmlCompute cluster (an item of `clusters`)."""

    name: str
    vm_size: str
    priority: Priority
    max_nodes: int
    min_nodes: int = 0
    idle_seconds_before_scaledown: int = 1800


@dataclass(frozen=True)
class ImageSettings:
    """One Docker image built from a context folder (an entry of `images`)."""

    key: str
    context: str
    dockerfile: str = "Dockerfile"
    build_args: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class Settings:
    """Everything the program, and the pipeline resources it will create, take from config.

    Paths (`pipeline_defs`, `local_store_path`, each image's `context`) are relative to the
    project root (the folder of Pulumi.yaml, :mod:`infra.paths`), not to the working directory.
    """

    project: str
    stack: str
    location: str
    name_prefix: str
    resource_group_name: str | None
    clusters: tuple[ClusterSettings, ...]
    registry_sku: RegistrySku
    key_vault_purge_protection: bool
    public_network_access: NetworkAccess
    tags: Mapping[str, str]
    images: Mapping[str, ImageSettings]
    pipeline_defs: str
    schedules_enabled: bool
    version_retention: int
    backend: Backend
    local_store_path: str

    @property
    def cluster_names(self) -> tuple[str, ...]:
        """Names of the configured clusters, in config order."""
        return tuple(c.name for c in self.clusters)

    def resource_tags(self) -> dict[str, str]:
        """Tags for every taggable resource: the configured ones plus project, stack and managed-by
        (those three always win, so resources can be traced back to this stack)."""
        return {
            **self.tags,
            "project": self.project,
            "stack": self.stack,
            "managed-by": "pulumi",
        }


class SettingsError(ValueError):
    """One or more config values are missing or invalid; the message lists each with its key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        listing = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid stack configuration ({len(problems)} problem(s)):\n{listing}")


class _Reader:
    """Collects problems while converting raw config strings, so all are reported at once."""

    def __init__(self, raw: Mapping[str, str]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def fail(self, key: str, message: str) -> None:
        self.problems.append(f"{NAMESPACE}:{key}: {message}")

    def text(self, key: str, *, required: bool = True) -> str:
        value = self.raw.get(key)
        if value is None or (required and value.strip() == ""):
            if required:
                self.fail(
                    key, f"missing; set it with `pulumi config set {NAMESPACE}:{key} <value>`"
                )
            return ""
        return value.strip()

    def enum(self, key: str, kind: type[E], default: E) -> E:
        value = self.text(key)
        try:
            return kind(value)
        except ValueError:
            if value:
                allowed = ", ".join(m.value for m in kind)
                self.fail(key, f"{value!r} is not allowed; allowed values: {allowed}")
            return default

    def boolean(self, key: str) -> bool:
        value = self.text(key)
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        if value:
            self.fail(key, f"{value!r} is not a boolean; allowed values: true, false")
        return False

    def integer(self, key: str, minimum: int) -> int:
        value = self.text(key)
        try:
            number = int(value)
        except ValueError:
            if value:
                self.fail(
                    key, f"{value!r} is not an integer; allowed values: integers >= {minimum}"
                )
            return minimum
        if number < minimum:
            self.fail(key, f"{number} is too small; allowed values: integers >= {minimum}")
        return number

    def json(self, key: str, expected: type, shape: str) -> Any:
        """A structured value (Pulumi passes objects and lists as JSON text)."""
        value = self.text(key)
        if not value:
            return expected()
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as exc:
            self.fail(key, f"not valid JSON ({exc.msg}); expected {shape}")
            return expected()
        if not isinstance(parsed, expected):
            self.fail(key, f"expected {shape}, found {type(parsed).__name__}")
            return expected()
        return parsed


def _field(
    reader: _Reader,
    key: str,
    item: Mapping[str, Any],
    name: str,
    check: Callable[[Any], bool],
    allowed: str,
    default: Any = None,
) -> Any:
    """One field of a structured config item, checked; a problem names `key` and the field."""
    if name not in item:
        if default is None:
            reader.fail(key, f"{name}: missing; allowed values: {allowed}")
        return default
    value = item[name]
    if not check(value):
        reader.fail(key, f"{name}: {value!r} is not allowed; allowed values: {allowed}")
        return default
    return value


def _is_int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _is_str(pattern: re.Pattern[str]) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, str) and pattern.fullmatch(v) is not None


_CLUSTER_FIELDS = {
    "name",
    "vmSize",
    "priority",
    "minNodes",
    "maxNodes",
    "idleSecondsBeforeScaledown",
}


def _cluster(reader: _Reader, index: int, item: Any) -> ClusterSettings | None:
    """One item of `clusters`, e.g. {"name": "cpu", "vmSize": "Standard_DS3_v2", ...}."""
    key = f"clusters[{index}]"
    if not isinstance(item, dict):
        reader.fail(key, f"expected an object, found {type(item).__name__}")
        return None
    for unknown in sorted(set(item) - _CLUSTER_FIELDS):
        reader.fail(
            key, f"{unknown}: unknown field; allowed fields: {', '.join(sorted(_CLUSTER_FIELDS))}"
        )
    name = _field(reader, key, item, "name", _is_str(_CLUSTER_NAME), _CLUSTER_RULE)
    if isinstance(name, str) and re.search(r"-\d+$", name):
        reader.fail(key, f"name: {name!r} may not end in '-<digits>' (Azure ML rejects it)")
    vm_size = _field(
        reader, key, item, "vmSize", _is_str(_VM_SIZE), "an Azure VM size such as Standard_DS3_v2"
    )
    priorities = ", ".join(p.value for p in Priority)
    priority = _field(
        reader, key, item, "priority", lambda v: v in set(Priority), priorities, Priority.DEDICATED
    )
    min_nodes = _field(reader, key, item, "minNodes", _is_int(0), "integers >= 0", 0)
    max_nodes = _field(reader, key, item, "maxNodes", _is_int(1), "integers >= 1")
    idle = _field(
        reader, key, item, "idleSecondsBeforeScaledown", _is_int(60), "integers >= 60", 1800
    )
    if isinstance(max_nodes, int) and isinstance(min_nodes, int) and min_nodes > max_nodes:
        reader.fail(
            key,
            f"minNodes: {min_nodes} is above maxNodes {max_nodes}; allowed values: 0..{max_nodes}",
        )
    if name is None or vm_size is None or max_nodes is None:
        return None
    return ClusterSettings(name, vm_size, Priority(priority), max_nodes, min_nodes, idle)


def _clusters(reader: _Reader) -> tuple[ClusterSettings, ...]:
    items = reader.json("clusters", list, "a list of {name, vmSize, priority, maxNodes, ...}")
    clusters = [c for i, item in enumerate(items) if (c := _cluster(reader, i, item)) is not None]
    if reader.raw.get("clusters", "").strip() == "[]":
        reader.fail("clusters", "empty; at least one cluster is needed to run pipelines")
    names = [c.name.lower() for c in clusters]
    for name in sorted({n for n in names if names.count(n) > 1}):
        reader.fail("clusters", f"cluster name {name!r} is used twice; names must be unique")
    return tuple(clusters)


def _images(reader: _Reader) -> dict[str, ImageSettings]:
    items = reader.json("images", dict, 'an object such as {"training": {"context": "docker"}}')
    images: dict[str, ImageSettings] = {}
    allowed_fields = {"context", "dockerfile", "buildArgs"}
    for image_key, item in items.items():
        key = f"images.{image_key}"
        if not _IMAGE_KEY.fullmatch(image_key):
            reader.fail(
                key, "image keys are lowercase letters, digits and '-', starting with a letter"
            )
            continue
        if not isinstance(item, dict):
            reader.fail(key, f"expected an object with {', '.join(sorted(allowed_fields))}")
            continue
        for unknown in sorted(set(item) - allowed_fields):
            reader.fail(
                key,
                f"{unknown}: unknown field; allowed fields: {', '.join(sorted(allowed_fields))}",
            )
        nonempty = _is_str(re.compile(r".+"))
        context = _field(
            reader, key, item, "context", nonempty, "a folder relative to the repository"
        )
        dockerfile = _field(reader, key, item, "dockerfile", nonempty, "a file name", "Dockerfile")
        build_args = item.get("buildArgs", {})
        if not (
            isinstance(build_args, dict) and all(isinstance(v, str) for v in build_args.values())
        ):
            reader.fail(key, "buildArgs: expected an object of string values")
            build_args = {}
        if context is not None:
            images[image_key] = ImageSettings(
                image_key, context, dockerfile, MappingProxyType(dict(build_args))
            )
    return images


def _tags(reader: _Reader) -> dict[str, str]:
    tags = reader.json("tags", dict, "an object of string values")
    bad = sorted(k for k, v in tags.items() if not isinstance(v, str))
    if bad:
        reader.fail("tags", f"values must be strings (not for {', '.join(bad)})")
    return {k: v for k, v in tags.items() if isinstance(v, str)}


def parse_settings(raw: Mapping[str, str], project: str, stack: str) -> Settings:
    """Settings from raw config strings (key without namespace -> value as Pulumi stores it).

    Raises :class:`SettingsError` listing every missing or invalid key.
    """
    reader = _Reader(raw)
    prefix = reader.text("namePrefix")
    if prefix and not _PREFIX.fullmatch(prefix):
        reader.fail(
            "namePrefix",
            f"{prefix!r} is not allowed; allowed values: 1-32 lowercase letters, digits or '-', "
            "starting with a letter and ending with a letter or digit",
        )
    settings = Settings(
        project=project,
        stack=stack,
        location=reader.text("location"),
        name_prefix=prefix,
        resource_group_name=reader.text("resourceGroupName", required=False) or None,
        clusters=_clusters(reader),
        registry_sku=reader.enum("registrySku", RegistrySku, RegistrySku.BASIC),
        key_vault_purge_protection=reader.boolean("keyVaultPurgeProtection"),
        public_network_access=reader.enum(
            "publicNetworkAccess", NetworkAccess, NetworkAccess.ENABLED
        ),
        tags=MappingProxyType(_tags(reader)),
        images=MappingProxyType(_images(reader)),
        pipeline_defs=reader.text("pipelineDefs"),
        schedules_enabled=reader.boolean("schedulesEnabled"),
        version_retention=reader.integer("versionRetention", minimum=1),
        backend=reader.enum("backend", Backend, Backend.AZUREML),
        local_store_path=reader.text("localStorePath"),
    )
    if reader.problems:
        raise SettingsError(reader.problems)
    return settings


def read_settings() -> Settings:
    """Settings of the running Pulumi program (its stack config, project defaults applied)."""
    import pulumi  # Imported here so parse_settings stays usable without the Pulumi SDK loaded.

    config = pulumi.Config(NAMESPACE)
    raw = {key: value for key in KEYS if (value := config.get(key)) is not None}
    return parse_settings(raw, project=pulumi.get_project(), stack=pulumi.get_stack())
