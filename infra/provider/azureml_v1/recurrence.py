"""Schedule recurrences between the definitions core and azureml's `ScheduleRecurrence`.

Two facts from the SDK shape this module (`azureml.pipeline.core.schedule.ScheduleRecurrence`):

- "If None is provided [as start_time], the first workload is run instantly"; "if the start time
  is in the past, the first workload is run at the next calculated run time". A recurrence without
  a declared start time is therefore sent with :data:`DEFAULT_START_TIME`, a fixed instant in the
  past: the schedule's first run is its next computed time, and the value is the same on every
  `pulumi up` (no diff). Read back, that value means "no start time declared".
- `time_zone` is "the time zone of the start_time" (UTC when none): the service evaluates hours
  and minutes in the zone of the start time, so always sending a start time with the declared
  zone makes `hours`/`minutes` fire in that zone.

Azure ML cannot create a schedule disabled (`ScheduleCreationInfo` has no status), so a paused
schedule is created with :data:`PAUSED_START_TIME`, far in the future, disabled in the same
update that sets its real recurrence: it never runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from infra.definitions.model import Frequency, Recurrence, WeekDay
from infra.provider.port import BackendError

DEFAULT_START_TIME = "2000-01-01T00:00:00"
"""Sent when a recurrence declares no start time: in the past, so no run at creation."""
PAUSED_START_TIME = "2100-01-01T00:00:00"
"""Sent when creating a paused schedule, until the update that disables it."""
_FORMAT = "%Y-%m-%dT%H:%M:%S"
_WEEK_DAYS = {d.value for d in WeekDay}


def make_recurrence(rec: Recurrence, start_time: str | None = None) -> Any:
    """An azureml ScheduleRecurrence for a definition's recurrence, always with a start time
    and a time zone (validated by azureml's own rules). `start_time` overrides the start."""
    from azureml.pipeline.core.schedule import ScheduleRecurrence, TimeZone

    zone_name = rec.time_zone or "UTC"
    try:
        time_zone = TimeZone(zone_name)
    except ValueError as exc:
        raise BackendError(
            f"time zone {zone_name!r} is not an Azure ML time zone (use Windows names "
            "such as 'UTC' or 'W. Europe Standard Time')"
        ) from exc
    recurrence = ScheduleRecurrence(
        frequency=rec.frequency.value,
        interval=rec.interval,
        start_time=start_time or rec.start_time or DEFAULT_START_TIME,
        time_zone=time_zone,
        hours=rec.hours,
        minutes=rec.minutes,
        week_days=[d.value for d in rec.week_days] if rec.week_days else None,
    )
    try:
        recurrence.validate()
    except ValueError as exc:
        raise BackendError(f"recurrence rejected by azureml: {exc}") from exc
    return recurrence


def _start_time(value: Any) -> str | None:
    """The start time as the definitions write it (YYYY-MM-DDThh:mm:ss), None for our default."""
    if value is None:
        return None
    if isinstance(value, datetime):
        text = value.replace(tzinfo=None).strftime(_FORMAT)
    else:
        try:
            text = datetime.fromisoformat(str(value)).replace(tzinfo=None).strftime(_FORMAT)
        except ValueError:
            text = str(value)
    return None if text == DEFAULT_START_TIME else text


def recurrence_from_azure(recurrence: Any) -> Recurrence:
    """A definition recurrence from an azureml ScheduleRecurrence (as `Schedule.recurrence`
    reports it)."""
    zone = recurrence.time_zone
    days = [d for d in (recurrence.week_days or []) if d in _WEEK_DAYS]
    return Recurrence(
        frequency=Frequency(recurrence.frequency),
        interval=int(recurrence.interval),
        hours=list(recurrence.hours) if recurrence.hours is not None else None,
        minutes=list(recurrence.minutes) if recurrence.minutes is not None else None,
        week_days=[WeekDay(d) for d in days] if recurrence.week_days else None,
        time_zone=getattr(zone, "value", zone),
        start_time=_start_time(recurrence.start_time),
    )
