"""Load the pipeline a resource describes from disk, and prove it is the one the inputs hashed.

Why from disk and not from a copy of the spec in the inputs: the code of every step must be read
from disk anyway (it is uploaded at publish time), and the engine starts the provider host in the
Pulumi project folder, so the definition is right there. Keeping the spec out of the inputs keeps
`pulumi preview --diff` readable (no multi-kilobyte JSON string that changes with every edit) and
avoids the engine's number handling (every number comes back as a float, which would turn an
argument `3` into `3.0`). The content hash in the inputs covers settings, code bytes and image
references: the provider recomputes it before publishing and refuses to publish anything other
than what the preview showed.
"""

from __future__ import annotations

from pathlib import Path

from infra.definitions.hashing import pipeline_digest
from infra.definitions.loader import PIPELINE_FILE, load_pipeline
from infra.provider.port import BackendError, Owner, PipelineBuild, RegistryIdentity


def load_build(
    name: str,
    code_root: str,
    images: dict[str, str],
    content_hash: str,
    root: Path,
    version_key: str = "",
    registry_identities: dict[str, RegistryIdentity] | None = None,
    owner: Owner | None = None,
) -> PipelineBuild:
    """Load `<root>/<code_root>/pipeline.yaml`, check its digest equals `content_hash`."""
    file = root / code_root / PIPELINE_FILE
    loaded, errors = load_pipeline(file, root)
    if loaded is None:
        problems = "; ".join(str(e) for e in errors) or "not found"
        raise BackendError(f"pipeline {name!r}: cannot load {file}: {problems}")
    actual = pipeline_digest(loaded, images).digest
    if actual != content_hash:
        raise BackendError(
            f"pipeline {name!r}: {file} or its step code changed since the preview "
            f"(content hash {actual[:12]}, expected {content_hash[:12]}); run `pulumi up` again"
        )
    return PipelineBuild(
        name,
        loaded.spec,
        loaded.folder,
        dict(images),
        content_hash,
        version_key,
        dict(registry_identities or {}),
        owner,
    )
