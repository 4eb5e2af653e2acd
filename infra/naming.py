"""Azure resource names derived from the name prefix and stack, valid for each resource type.

Names are "<prefix>-<stack>-<role>" where a resource allows hyphens, trimmed to the resource's
length limit. Storage accounts, container registries and key vaults have globally unique names
(they are DNS names), so they get a short suffix that is a hash of subscription, project, stack and
prefix: stable across runs (no random state to keep), different for another subscription or stack,
and different for two long prefixes that trim to the same text. This is the same idea as ARM's
`uniqueString(subscription().id, ...)`.

Rules (Azure "Naming rules and restrictions for Azure resources"):

- resource group: 1-90, letters, digits, '-', '_', '.', '(', ')'; not ending in '.'
- storage account: 3-24, lowercase letters and digits; global
- container registry: 5-50, letters and digits; global (we use lowercase: the login server is)
- key vault: 3-24, letters, digits and '-', starting with a letter, ending with a letter or digit,
  no '--'; global
- Log Analytics workspace: 4-63, letters, digits and '-', starting and ending with a letter or digit
- Application Insights: 1-260, no '%&\\?/' and not ending in ' ' or '.'
- ML workspace: 3-33, letters, digits, '-' and '_', starting with a letter or digit
- user-assigned identity: 3-128, letters, digits, '-' and '_', starting with a letter or digit
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

SUFFIX_LENGTH = 6

# Validity of each kind of name, used by tests and by `check_name` to fail early with a clear error.
RULES: dict[str, re.Pattern[str]] = {
    "resource_group": re.compile(r"^[-\w.()]{0,89}[-\w()]$"),
    "storage_account": re.compile(r"^[a-z0-9]{3,24}$"),
    "container_registry": re.compile(r"^[a-zA-Z0-9]{5,50}$"),
    "key_vault": re.compile(r"^(?!.*--)[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$"),
    "log_analytics": re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9-]{2,61}[a-zA-Z0-9]$"),
    "app_insights": re.compile(r"^[^%&\\?/]{0,259}[^%&\\?/ .]$"),
    "ml_workspace": re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$"),
    "identity": re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$"),
}


@dataclass(frozen=True)
class ResourceNames:
    """Azure names of the resources of one stack."""

    resource_group: str
    storage_account: str
    container_registry: str
    key_vault: str
    log_analytics: str
    app_insights: str
    ml_workspace: str

    def identity(self, cluster: str) -> str:
        """Name of the user-assigned identity of a compute cluster."""
        return _trim(f"{self.ml_workspace}-{cluster}-id".lower(), 128)


def stable_suffix(*parts: str) -> str:
    """Short lowercase hex hash of `parts` (order matters)."""
    return hashlib.sha256("/".join(parts).encode("utf-8")).hexdigest()[:SUFFIX_LENGTH]


def _slug(text: str) -> str:
    """Lowercase letters, digits and single hyphens; no leading or trailing hyphen."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")


def _trim(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, without a dangling hyphen at the cut."""
    return text[:limit].rstrip("-")


def _alnum(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def resource_names(
    prefix: str, project: str, stack: str, subscription_id: str, generation: int = 0
) -> ResourceNames:
    """Names of the stack's resources; every one satisfies its entry in :data:`RULES`.

    `generation` (config `nameGeneration`) renames what Azure keeps after deletion: the ML
    workspace (soft-deleted for 14 days) and the key vault (90 days; for good with purge
    protection). Generation 0 gives the original names. Log Analytics recovers a deleted
    workspace created again under its name, and storage account and registry names are free once
    deleted, so those stay.
    """
    base = _slug(f"{prefix}-{stack}") or "aml"
    if not base[0].isalpha():
        base = "a" + base  # key vaults (and our own rule) need a leading letter
    suffix = stable_suffix(subscription_id, project, stack, prefix)
    vault_suffix = suffix if generation == 0 else stable_suffix(suffix, f"generation-{generation}")
    marker = str(generation) if generation else ""
    compact = _alnum(base)
    names = ResourceNames(
        resource_group=_trim(f"rg-{base}", 90),
        storage_account=compact[: 24 - SUFFIX_LENGTH] + suffix,
        container_registry=compact[: 50 - SUFFIX_LENGTH] + suffix,
        key_vault=f"{_trim(base, 24 - SUFFIX_LENGTH - 1)}-{vault_suffix}",
        log_analytics=_trim(f"{base}-logs", 63),
        app_insights=_trim(f"{base}-insights", 260),
        ml_workspace=(
            _trim(f"{base}-ws", 33 - len(marker))
            if len(base) <= 30
            else _trim(base, 33 - len(marker))
        )
        + marker,
    )
    for kind in RULES:
        if kind != "identity":
            check_name(kind, getattr(names, kind))
    return names


def check_name(kind: str, name: str) -> str:
    """`name` if it is valid for `kind` (a key of :data:`RULES`), else ValueError saying why."""
    if not RULES[kind].fullmatch(name):
        raise ValueError(f"{name!r} is not a valid {kind.replace('_', ' ')} name")
    return name
