"""Cron expressions become the Azure ML v1 recurrence that fires at the same instants."""

from __future__ import annotations

import pytest

from infra.definitions.model import Frequency, Recurrence, Schedule, WeekDay
from infra.definitions.recurrence import (
    CronNotExpressible,
    cron_to_recurrence,
    describe,
    effective_recurrence,
    recurrence_problems,
    time_zone_problem,
)
from infra.definitions.timezones import AZUREML_TIME_ZONES


def test_nightly_cron_becomes_a_daily_recurrence_at_that_time() -> None:
    rec = cron_to_recurrence("30 2 * * *", "W. Europe Standard Time")

    assert rec == Recurrence(
        frequency=Frequency.DAY,
        interval=1,
        hours=[2],
        minutes=[30],
        time_zone="W. Europe Standard Time",
    )


def test_weekday_cron_becomes_a_weekly_recurrence_on_those_days() -> None:
    rec = cron_to_recurrence("0 6 * * 1-5")

    assert rec.frequency is Frequency.WEEK
    assert rec.week_days == [
        WeekDay.MONDAY,
        WeekDay.TUESDAY,
        WeekDay.WEDNESDAY,
        WeekDay.THURSDAY,
        WeekDay.FRIDAY,
    ]
    assert (rec.hours, rec.minutes) == ([6], [0])


def test_sunday_as_7_and_names_are_understood() -> None:
    assert cron_to_recurrence("0 0 * * 7").week_days == [WeekDay.SUNDAY]
    assert cron_to_recurrence("0 0 * * sun,sat").week_days == [WeekDay.SUNDAY, WeekDay.SATURDAY]


def test_every_fifteen_minutes_lists_every_hour_and_quarter() -> None:
    rec = cron_to_recurrence("*/15 * * * *")

    assert rec.frequency is Frequency.DAY
    assert rec.hours == list(range(24))
    assert rec.minutes == [0, 15, 30, 45]


@pytest.mark.parametrize("cron", ["0 3 1 * *", "0 3 * 6 *", "0 3 1-7 * 1"])
def test_day_of_month_and_month_fields_are_rejected(cron: str) -> None:
    with pytest.raises(CronNotExpressible, match="day-of-month or month"):
        cron_to_recurrence(cron)


@pytest.mark.parametrize("cron", ["61 2 * * *", "0 2 * *", "every day", "0 25 * * *"])
def test_invalid_cron_is_a_value_error(cron: str) -> None:
    with pytest.raises(ValueError, match="cron"):
        cron_to_recurrence(cron)


def test_hours_with_hour_frequency_is_a_problem() -> None:
    problems = recurrence_problems(Recurrence(frequency=Frequency.HOUR, hours=[1], minutes=[0]))

    assert [p.path for p in problems] == [("recurrence", "hours"), ("recurrence", "minutes")]


def test_week_days_need_week_frequency() -> None:
    problems = recurrence_problems(
        Recurrence(frequency=Frequency.MONTH, week_days=[WeekDay.MONDAY])
    )

    assert [p.path for p in problems] == [("recurrence", "week_days")]


def test_a_valid_weekly_recurrence_has_no_problems() -> None:
    rec = Recurrence(frequency=Frequency.WEEK, week_days=[WeekDay.MONDAY], hours=[6], minutes=[0])

    assert recurrence_problems(rec) == []
    assert describe(rec) == "every 1 Week on Monday at 06:00"


def test_schedule_time_zone_fills_a_recurrence_without_one() -> None:
    schedule = Schedule(
        name="weekly", recurrence=Recurrence(frequency=Frequency.DAY), time_zone="UTC"
    )

    assert effective_recurrence(schedule).time_zone == "UTC"


def test_time_zone_list_matches_the_installed_azureml_sdk() -> None:
    # The core keeps its own copy (it must not import azureml); this guards it against SDK changes.
    from azureml.pipeline.core.schedule import TimeZone

    assert {t.value for t in TimeZone} == AZUREML_TIME_ZONES


def test_an_iana_time_zone_is_rejected_with_windows_suggestions() -> None:
    message = time_zone_problem("W. Europe Standard")

    assert message is not None and "'W. Europe Standard Time'" in message
    assert time_zone_problem("UTC") is None


def test_start_time_with_an_offset_is_a_problem() -> None:
    rec = Recurrence(frequency=Frequency.DAY, start_time="2026-01-05T06:00:00+01:00")

    assert [p.path for p in recurrence_problems(rec)] == [("recurrence", "start_time")]
    assert recurrence_problems(rec.model_copy(update={"start_time": "2026-01-05T06:00:00"})) == []


def test_a_schedule_runs_in_one_zone_whichever_key_names_it() -> None:
    on_schedule = Schedule(name="s", cron="0 6 * * 1", time_zone="W. Europe Standard Time")
    on_recurrence = Schedule(
        name="s",
        recurrence=Recurrence(frequency=Frequency.DAY, time_zone="Tokyo Standard Time"),
    )
    neither = Schedule(name="s", recurrence=Recurrence(frequency=Frequency.DAY))

    assert on_schedule.effective_time_zone == "W. Europe Standard Time"
    assert effective_recurrence(on_schedule).time_zone == "W. Europe Standard Time"
    assert on_recurrence.effective_time_zone == "Tokyo Standard Time"
    assert effective_recurrence(on_recurrence).time_zone == "Tokyo Standard Time"
    assert neither.effective_time_zone == "UTC"
    assert effective_recurrence(neither).time_zone == "UTC"
