"""Schedule recurrences: Azure ML v1 combination rules and cron translation.

Azure ML v1 (`ScheduleRecurrence`) has no cron. A 5-field cron expression is translated into the
recurrence that fires at exactly the same instants (Day or Week frequency with explicit hour and
minute lists), or rejected with the reason when v1 cannot express it (day-of-month, month).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from croniter import croniter

from infra.spec.model import Frequency, Recurrence, Schedule, WeekDay

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
                f"start_time {rec.start_time!r} is not an ISO 8601 date-time "
                "(e.g. 2026-01-05T06:00:00)",
            )
        )
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
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


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
    if not croniter.is_valid(expression):
        raise ValueError(f"cron {expression!r} is not a valid cron expression")
    expanded, _ = croniter.expand(expression)
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
    if schedule.recurrence is not None:
        if schedule.recurrence.time_zone is None:
            return schedule.recurrence.model_copy(update={"time_zone": schedule.time_zone})
        return schedule.recurrence
    if schedule.cron is None:
        raise ValueError(f"schedule {schedule.name!r} has neither recurrence nor cron")
    return cron_to_recurrence(schedule.cron, schedule.time_zone)


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
