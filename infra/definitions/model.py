"""Typed model of a pipeline definition (`pipeline_defs/<name>/pipeline.yaml`).

Pure data: no pulumi, no azureml. Structural rules (types, unknown keys, name syntax) live here as
pydantic constraints; rules that relate several parts of a definition (references, cycles, files on
disk) live in :mod:`infra.definitions.validate`, so every problem is reported at once with its
location.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum, StrEnum
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PrivateAttr, StringConstraints
from pydantic_core import PydanticCustomError

from infra.definitions import refs

# Azure ML names: pipeline endpoints and experiments accept letters, digits, '-' and '_', starting
# with a letter or digit. We keep to 1-64 characters so derived names ("<pipeline>-<schedule>")
# stay within Azure's 255-character limit with room to spare.
AZURE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
AzureName = Annotated[str, StringConstraints(pattern=AZURE_NAME_PATTERN)]
# Steps, outputs and parameters become Python identifiers on the Azure side
# (OutputFileDatasetConfig and PipelineParameter names), so they follow identifier rules.
IDENTIFIER_PATTERN = r"^[A-Za-z][A-Za-z0-9_]{0,63}$"
Identifier = Annotated[str, StringConstraints(pattern=IDENTIFIER_PATTERN)]


def azure_output_name(step: str, output: str) -> str:
    """The name a step output has on Azure ML (its `OutputFileDatasetConfig` and the input port of
    each step reading it): step and output joined by '_'. Distinct pairs can meet on one name
    (`a_b`.`c` and `a`.`b_c`); validation rejects that with this same function, which the compile
    step must use to name outputs."""
    return f"{step}_{output}"


class _Strict(BaseModel):
    """Base for every definition model: unknown keys are errors, models are immutable.

    Definition files are validated with `strict=True` (see the loader): `interval: true` or
    `interval: '2'` is an error there, never converted to 1 or 2. Machine-written copies (Pulumi
    state, whose numbers travel as floats) are validated without it."""

    model_config = ConfigDict(extra="forbid", frozen=True)


E = TypeVar("E", bound=Enum)


def _by_value(enum_type: type[E]) -> Callable[[object], object]:
    """Validator for an enum field that takes its exact values even under strict validation
    (which otherwise wants enum instances, while YAML gives strings)."""
    values = [repr(member.value) for member in enum_type]
    expected = ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]

    def convert(value: object) -> object:
        if isinstance(value, enum_type):
            return value
        try:
            return enum_type(value)
        except (ValueError, TypeError):
            raise PydanticCustomError(
                "enum", "Input should be {expected}", {"expected": expected}
            ) from None

    return convert


class ParameterType(StrEnum):
    """Types a pipeline parameter may have (mapped to `PipelineParameter` defaults on Azure)."""

    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"


ParameterTypeField = Annotated[ParameterType, BeforeValidator(_by_value(ParameterType))]
ParameterValue = bool | int | float | str


class Parameter(_Strict):
    """A typed pipeline parameter with its default value."""

    type: ParameterTypeField
    default: ParameterValue
    description: str = ""


class Frequency(StrEnum):
    """Azure ML v1 `ScheduleRecurrence.frequency` values."""

    MINUTE = "Minute"
    HOUR = "Hour"
    DAY = "Day"
    WEEK = "Week"
    MONTH = "Month"


class WeekDay(StrEnum):
    """Azure ML v1 week day names (`ScheduleRecurrence.week_days`)."""

    MONDAY = "Monday"
    TUESDAY = "Tuesday"
    WEDNESDAY = "Wednesday"
    THURSDAY = "Thursday"
    FRIDAY = "Friday"
    SATURDAY = "Saturday"
    SUNDAY = "Sunday"


FrequencyField = Annotated[Frequency, BeforeValidator(_by_value(Frequency))]
WeekDayField = Annotated[WeekDay, BeforeValidator(_by_value(WeekDay))]


class Recurrence(_Strict):
    """A schedule recurrence in Azure ML v1 terms (`azureml.pipeline.core.ScheduleRecurrence`).

    Combination rules Azure enforces (hours/minutes only with Day or Week, week days only with Week)
    are checked in :mod:`infra.definitions.recurrence` so they are reported with the other problems.
    """

    frequency: FrequencyField
    interval: Annotated[int, Field(ge=1, le=1000)] = 1
    hours: list[Annotated[int, Field(ge=0, le=23)]] | None = None
    minutes: list[Annotated[int, Field(ge=0, le=59)]] | None = None
    week_days: list[WeekDayField] | None = None
    time_zone: str | None = None
    start_time: str | None = None


class Schedule(_Strict):
    """A schedule of a pipeline: either a recurrence or a cron expression (translated)."""

    name: AzureName
    description: str = ""
    recurrence: Recurrence | None = None
    cron: str | None = None
    time_zone: str = "UTC"
    parameters: dict[str, ParameterValue] = Field(default_factory=dict)
    enabled: bool = True

    @property
    def effective_time_zone(self) -> str:
        """The zone the schedule runs in: the recurrence's `time_zone` when it names one, else
        the schedule's (validation rejects the two disagreeing). The one rule every backend
        (Azure ML v1 and v2, Data Factory) asks instead of choosing between the two keys."""
        if self.recurrence is not None and self.recurrence.time_zone is not None:
            return self.recurrence.time_zone
        return self.time_zone


class DataFactoryOptions(_Strict):
    """How Azure Data Factory starts this pipeline, on stacks that turn the factory on
    (`azureml-pipelines:dataFactory`); ignored elsewhere."""

    enabled: bool = Field(
        default=True,
        description="Whether the stack's Data Factory gets an ADF pipeline running this one.",
    )
    triggers: list[Schedule] = Field(
        default_factory=list,
        description=(
            "ADF schedule triggers of the ADF pipeline, written like `schedules` (recurrence or "
            "cron, time_zone, parameters, enabled). Paused where the stack pauses schedules."
        ),
    )


class _StepBase(_Strict):
    name: Identifier
    description: str = ""
    code: str = Field(description="Code folder, relative to the pipeline folder.")
    args: list[str | int | float | bool] = Field(
        default_factory=list,
        description=(
            "Arguments. A whole argument may be a reference: ${{parameters.NAME}}, "
            "${{steps.STEP.outputs.NAME}} (an upstream output, mounted read-only) or "
            "${{outputs.NAME}} (a directory this step writes)."
        ),
    )
    outputs: list[Identifier] = Field(default_factory=list)
    after: list[Identifier] = Field(
        default_factory=list, description="Extra ordering dependencies on other steps."
    )
    compute: str | None = Field(default=None, description="Cluster name; default: the pipeline's.")
    image: str | None = Field(default=None, description="Image key; default: the pipeline's.")
    allow_reuse: bool = True
    environment: dict[str, str] = Field(default_factory=dict)
    _arguments: tuple[refs.Argument, ...] = PrivateAttr(default=())

    def model_post_init(self, context: Any, /) -> None:
        """Parse the arguments once, when the step is built (every reader shares the result)."""
        self._arguments = refs.parse_arguments(self.args)

    @property
    def arguments(self) -> tuple[refs.Argument, ...]:
        """`args` parsed: literals, references, and malformed ones with the reason."""
        return self._arguments


class PythonStep(_StepBase):
    """A Python script run with the image's `python` (`PythonScriptStep` on Azure)."""

    kind: Literal["python"]
    script: str


class RStep(_StepBase):
    """An R script run with `Rscript` (`CommandStep` on Azure; `RScriptStep` is deprecated)."""

    kind: Literal["r"]
    script: str


class CommandStep(_StepBase):
    """A plain command (argv list) run in the code folder (`CommandStep` on Azure)."""

    kind: Literal["command"]
    command: Annotated[list[str], Field(min_length=1)]


Step = Annotated[PythonStep | RStep | CommandStep, Field(discriminator="kind")]


class PipelineSpec(_Strict):
    """One pipeline definition, as written in `pipeline.yaml`."""

    schema_: str | None = Field(default=None, alias="$schema", exclude=True)
    name: AzureName
    description: str = ""
    experiment: AzureName
    compute: str = Field(description="Default cluster name (a cluster of the stack config).")
    image: str = Field(default="training", description="Default image key (built from docker/).")
    parameters: dict[Identifier, Parameter] = Field(default_factory=dict)
    steps: Annotated[list[Step], Field(min_length=1)]
    schedules: list[Schedule] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    data_factory: DataFactoryOptions = Field(default_factory=DataFactoryOptions)

    def step(self, name: str) -> PythonStep | RStep | CommandStep:
        """Return the step called `name` (KeyError when absent)."""
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    def step_compute(self, step: PythonStep | RStep | CommandStep) -> str:
        """The cluster a step runs on: its own or the pipeline default."""
        return step.compute or self.compute

    def step_image(self, step: PythonStep | RStep | CommandStep) -> str:
        """The image key a step runs in: its own or the pipeline default."""
        return step.image or self.image


AnyStep = PythonStep | RStep | CommandStep
