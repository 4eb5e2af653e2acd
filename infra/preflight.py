"""What the program refuses once the settings are parsed and the definitions loaded, before it
registers any resource: one function for the program (:func:`infra.program.compose`) and for
`amlpipe validate --stack`, so a user learns locally what `pulumi preview` would say.

- an image whose build context folder or Dockerfile is missing (config problems,
  :func:`infra.settings.image_problems`): found before the workspace is registered, not when the
  image builds half-way through a deployment;
- `dataFactory.pipelines` naming a pipeline that does not exist or opts out of Data Factory
  (config problems, :func:`infra.settings.factory_problems`);
- with `api` or `apiPrevious` v2, definitions Azure ML v2 cannot express (located definition
  problems, :func:`infra.provider.azureml_v2.plan.v2_problems`).

Both need valid definitions: a definition that failed to load may be the very pipeline the
factory lists, so its absence would be reported as a second, misleading problem. The program stops
at the definitions' own problems first, and so does `amlpipe validate`.

No pulumi import (the CLI uses this); the v2 planning module is imported only for a stack that
uses v2, as the program always did: `amlpipe validate` of a v1 stack does not load it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.definitions.errors import SpecError, SpecErrors
from infra.settings import Api, ConfigProblem, SettingsError, factory_problems, image_problems

if TYPE_CHECKING:
    from infra.definitions.loader import LoadedPipeline
    from infra.settings import Settings


@dataclass(frozen=True)
class Preflight:
    """Every pre-flight problem of one stack's settings with its (valid) definitions."""

    config: tuple[ConfigProblem, ...]
    """Config keys wrong for these definitions (`dataFactory.pipelines`)."""
    definitions: tuple[SpecError, ...]
    """Definitions the stack's APIs cannot publish (located; Azure ML v2)."""

    def __bool__(self) -> bool:
        return bool(self.config or self.definitions)

    def failures(self) -> list[SettingsError | SpecErrors]:
        """The exceptions the program raises, in its order: config first, then definitions."""
        found: list[SettingsError | SpecErrors] = []
        if self.config:
            found.append(SettingsError(self.config))
        if self.definitions:
            found.append(SpecErrors(list(self.definitions)))
        return found

    def raise_all(self) -> None:
        """Raise what the program raises: the one kind of problem there is (config, or the
        definitions'), :class:`PreflightErrors` with both when there are both; nothing when
        there is no problem."""
        failures = self.failures()
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise PreflightErrors(failures)


class PreflightErrors(ValueError):
    """Config problems and definition problems of one stack, reported together: a user fixes
    both after one `pulumi preview`, as after one `amlpipe validate --stack`."""

    def __init__(self, failures: Sequence[SettingsError | SpecErrors]) -> None:
        self.failures = tuple(failures)
        super().__init__("\n".join(str(failure) for failure in self.failures))


def preflight(
    settings: Settings, definitions: Sequence[LoadedPipeline], root: Path, complete: bool = True
) -> Preflight:
    """The pre-flight problems of `settings` with `definitions` (loaded without errors), in the
    project whose root is `root` (the images' build contexts are relative to it).

    `complete`: `definitions` are all of the stack's (its `pipelineDefs` folder, what the program
    loads). False for some definitions only: a pipeline `dataFactory.pipelines` lists is then not
    reported as unknown for being absent from them."""
    config = [
        *image_problems(settings.images, root),
        *factory_problems(settings.data_factory, definitions, complete),
    ]
    problems: list[SpecError] = []
    if Api.V2 in settings.apis:
        from infra.provider.azureml_v2.plan import v2_problems

        problems = v2_problems(definitions)
    # Sorted as SpecErrors sorts them, so the CLI lists them in the program's order.
    return Preflight(tuple(config), tuple(SpecErrors(problems).errors) if problems else ())
