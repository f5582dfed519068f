"""The APScheduler trigger that keeps autoRun on crontab semantics, at explicit instants."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from asyncjobs.autorun import CronTrigger
from asyncjobs.cron import parse

SUNDAY = datetime(2026, 1, 4, 10, 0, tzinfo=UTC)


def trigger(expr: str) -> CronTrigger:
    return CronTrigger(parse(expr))


def test_first_fire_is_the_next_cron_time_after_now() -> None:
    fire = trigger("0 9 * * 1").get_next_fire_time(None, SUNDAY)
    assert fire == datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
    assert fire is not None and fire.weekday() == 0  # a Monday, whatever APScheduler numbers


def test_sunday_is_zero_and_seven_unlike_apscheduler() -> None:
    monday = SUNDAY + timedelta(days=1)
    for expr in ("0 12 * * 0", "0 12 * * 7", "0 12 * * sun"):
        assert trigger(expr).get_next_fire_time(None, monday) == SUNDAY + timedelta(days=7, hours=2)


def test_day_of_month_or_day_of_week() -> None:
    # Vixie cron: the 13th, or any Friday; APScheduler would want a Friday the 13th.
    fires = []
    previous = None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(4):
        previous = trigger("0 0 13 * 5").get_next_fire_time(previous, now)
        assert previous is not None
        fires.append(previous.day)
        now = previous
    assert fires == [2, 9, 13, 16]


def test_weekday_cron_never_fires_on_a_weekend() -> None:
    cron_trigger = trigger("0 8 * * 1-5")
    fire, now = None, SUNDAY
    for _ in range(20):
        fire = cron_trigger.get_next_fire_time(fire, now)
        assert fire is not None and fire.weekday() < 5
        now = fire


def test_every_thirty_seconds_with_the_seconds_field() -> None:
    start = datetime(2026, 1, 5, 12, 0, 10, tzinfo=UTC)
    first = trigger("*/30 * * * * *").get_next_fire_time(None, start)
    second = trigger("*/30 * * * * *").get_next_fire_time(first, first)
    assert (first, second) == (start.replace(second=30), start.replace(minute=1, second=0))


def test_missed_fire_times_collapse_into_the_next_future_one() -> None:
    previous = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    now = previous + timedelta(hours=1, seconds=20)
    fire = trigger("* * * * *").get_next_fire_time(previous, now)
    assert fire == datetime(2026, 1, 5, 13, 1, tzinfo=UTC)


def test_other_zones_are_read_as_the_same_instant() -> None:
    tokyo = timezone(timedelta(hours=9))
    now = SUNDAY.astimezone(tokyo)
    assert trigger("0 9 * * 1").get_next_fire_time(None, now) == datetime(
        2026, 1, 5, 9, 0, tzinfo=UTC
    )


def test_a_cron_that_never_fires_again_ends_the_timer() -> None:
    end = datetime(9999, 12, 31, 23, 59, 30, tzinfo=UTC)
    assert trigger("* * * * *").get_next_fire_time(None, end) is None


def test_repr_names_the_expression() -> None:
    assert repr(trigger("*/5 * * * *")) == "CronTrigger('*/5 * * * *')"
