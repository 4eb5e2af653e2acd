"""Schedule recurrences: Azure ML v1 combination rules and cron translation.

Azure ML v1 (`ScheduleRecurrence`) has no cron. A 5-field cron expression is translated into the
recurrence that fires at exactly the same instants (Day or Week frequency with explicit hour and
minute lists), or rejected with the reason when v1 cannot express it (day-of-month, month).
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from datetime import datetime

from infra.definitions.model import Frequency, Recurrence, Schedule, WeekDay
from infra.definitions.timezones import AZUREML_TIME_ZONES

# croniter numbers week days 0..6 from Sunday (7 is folded to 0 by its expand()).
_CRON_WEEK_DAYS = [
    WeekDay.SUNDAY,
    WeekDay.MONDAY,
    WeekDay.TUESDAY,
    WeekDay.WEDNESDAY,
    WeekDay.THURSDAY,
    WeekDay.FRIDAY,
    WeekDay.SATURDAY,
]


@dataclass(frozen=True)
class RecurrenceProblem:
    """A problem with a recurrence, located by key path relative to the schedule."""

    path: tuple[str | int, ...]
    message: str


_CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


class CronNotExpressible(ValueError):
    """A cron expression that is valid but has no Azure ML v1 recurrence equivalent."""


def recurrence_problems(rec: Recurrence) -> list[RecurrenceProblem]:
    """Combinations Azure ML v1 rejects, each located under `recurrence`."""
    problems: list[RecurrenceProblem] = []
    time_based = rec.frequency in (Frequency.DAY, Frequency.WEEK)
    for key in ("hours", "minutes"):
        if getattr(rec, key) is not None and not time_based:
            problems.append(
                RecurrenceProblem(
                    ("recurrence", key),
                    f"'{key}' is only allowed with frequency Day or Week, "
                    f"not {rec.frequency.value}",
                )
            )
    if rec.week_days is not None and rec.frequency is not Frequency.WEEK:
        problems.append(
            RecurrenceProblem(
                ("recurrence", "week_days"),
                f"'week_days' is only allowed with frequency Week, not {rec.frequency.value}",
            )
        )
    if rec.start_time is not None and not _is_iso_datetime(rec.start_time):
        problems.append(
            RecurrenceProblem(
                ("recurrence", "start_time"),
                f"start_time {rec.start_time!r} is not a date-time without offset "
                "(YYYY-MM-DDThh:mm:ss, e.g. 2026-01-05T06:00:00; the zone is time_zone)",
            )
        )
    if rec.time_zone is not None and (message := time_zone_problem(rec.time_zone)):
        problems.append(RecurrenceProblem(("recurrence", "time_zone"), message))
    for key in ("hours", "minutes", "week_days"):
        values = getattr(rec, key)
        if values is not None and len(values) == 0:
            problems.append(
                RecurrenceProblem(("recurrence", key), f"'{key}' must not be empty when given")
            )
        elif values is not None and len(set(values)) != len(values):
            problems.append(RecurrenceProblem(("recurrence", key), f"'{key}' has duplicates"))
    return problems


def _is_iso_datetime(text: str) -> bool:
    # Azure wants a naive local time (YYYY-MM-DDThh:mm:ss); the zone is `time_zone`'s job.
    try:
        return datetime.fromisoformat(text).tzinfo is None
    except ValueError:
        return False


def time_zone_problem(name: str) -> str | None:
    """Why `name` is not an Azure ML schedule time zone (None when it is one)."""
    if name in AZUREML_TIME_ZONES:
        return None
    close = difflib.get_close_matches(name, sorted(AZUREML_TIME_ZONES), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return (
        f"unknown time zone {name!r}: Azure ML uses Windows time zone names "
        f"(e.g. 'UTC', 'W. Europe Standard Time', 'Pacific Standard Time'){hint}"
    )


# Plain cron only: numbers or names, ranges, steps and lists. Anything else is an extension
# (Quartz, Jenkins, croniter) whose meaning a v1 recurrence cannot hold; croniter would accept some
# of them and drop what they mean (`1#2`, the second Monday, would expand to every Monday).
_CRON_NAMES = "SUN|MON|TUE|WED|THU|FRI|SAT|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC"
_CRON_ITEM = re.compile(
    rf"^(?:\*|(?:[0-9]+|{_CRON_NAMES})(?:-(?:[0-9]+|{_CRON_NAMES}))?)(?:/[0-9]+)?$",
    re.ASCII | re.IGNORECASE,
)
_CRON_EXTENSIONS = {
    "#": "'#' (the nth week day of a month)",
    "L": "'L' (the last day or last week day of a month)",
    "W": "'W' (the week day nearest a date)",
    "?": "'?' (no specific value)",
    "H": "'H' (a hashed value)",
    "R": "'R' (a random value)",
}


def _cron_extension(field: str) -> str | None:
    """Why a cron field is not plain cron (None when every item of it is)."""
    for item in field.split(","):
        if _CRON_ITEM.match(item):
            continue
        for char, meaning in _CRON_EXTENSIONS.items():
            if char in item.upper():
                return meaning
        return ""
    return None


# Cached: validation and publishing each translate every cron schedule, and the result is an
# immutable model (errors are raised again on each call, not cached).
@functools.lru_cache(maxsize=4096)
def cron_to_recurrence(expression: str, time_zone: str = "UTC") -> Recurrence:
    """Translate a 5-field cron expression into an equivalent Azure ML v1 recurrence.

    Raises ValueError (bad syntax) or :class:`CronNotExpressible` (valid, but not expressible).
    """
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expression!r} must have 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)}"
        )
    for field_name, field in zip(_CRON_FIELDS, fields, strict=True):
        reason = _cron_extension(field)
        if reason == "":
            raise ValueError(
                f"cron {expression!r} is not a valid cron expression ({field!r} in the "
                f"{field_name} field)"
            )
        if reason:
            raise CronNotExpressible(
                f"cron {expression!r} uses {reason} in the {field_name} field, which Azure ML v1 "
                "recurrences cannot express; use plain numbers, ranges, steps and lists, or a "
                "recurrence"
            )
    # croniter (and dateutil under it) loads only when a schedule is written as cron.
    from croniter import CroniterError, croniter

    try:
        # One expansion (`croniter.is_valid` is this same call, made only to catch its error).
        expanded, _ = croniter.expand(expression)
    except CroniterError:
        raise ValueError(f"cron {expression!r} is not a valid cron expression") from None
    minutes, hours, days_of_month, months, week_days = expanded
    if days_of_month != ["*"] or months != ["*"]:
        raise CronNotExpressible(
            f"cron {expression!r} uses day-of-month or month fields, which Azure ML v1 "
            "recurrences cannot express (use '*' there, or a recurrence with frequency Month)"
        )
    recurrence_minutes = sorted(int(m) for m in minutes) if minutes != ["*"] else list(range(60))
    recurrence_hours = sorted(int(h) for h in hours) if hours != ["*"] else list(range(24))
    if week_days == ["*"]:
        return Recurrence(
            frequency=Frequency.DAY,
            interval=1,
            hours=recurrence_hours,
            minutes=recurrence_minutes,
            time_zone=time_zone,
        )
    days = sorted({int(d) % 7 for d in week_days})
    return Recurrence(
        frequency=Frequency.WEEK,
        interval=1,
        hours=recurrence_hours,
        minutes=recurrence_minutes,
        week_days=[_CRON_WEEK_DAYS[d] for d in days],
        time_zone=time_zone,
    )


def effective_recurrence(schedule: Schedule) -> Recurrence:
    """The recurrence a schedule publishes: its own, or its cron translated (valid specs only)."""
    zone = schedule.effective_time_zone
    if schedule.recurrence is not None:
        if schedule.recurrence.time_zone != zone:
            return schedule.recurrence.model_copy(update={"time_zone": zone})
        return schedule.recurrence
    if schedule.cron is None:
        raise ValueError(f"schedule {schedule.name!r} has neither recurrence nor cron")
    return cron_to_recurrence(schedule.cron, zone)


def describe(rec: Recurrence) -> str:
    """A short human summary, for diffs and the CLI (e.g. 'every 1 Week on Monday at 06:00 UTC')."""
    text = f"every {rec.interval} {rec.frequency.value}"
    if rec.week_days:
        text += " on " + ",".join(d.value for d in rec.week_days)
    if rec.hours is not None or rec.minutes is not None:
        hours = rec.hours if rec.hours is not None else [0]
        minutes = rec.minutes if rec.minutes is not None else [0]
        if len(hours) * len(minutes) <= 4:
            times = [f"{h:02d}:{m:02d}" for h in hours for m in minutes]
            text += " at " + ",".join(times)
        else:
            text += f" at hours {hours} minutes {minutes}"
    if rec.time_zone:
        text += f" {rec.time_zone}"
    if rec.start_time:
        text += f" from {rec.start_time}"
    return text
