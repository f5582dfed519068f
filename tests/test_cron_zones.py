"""Crons read in a time zone's wall clock: skipped spring-forward times, fall-back times once."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest

import asyncjobs
from asyncjobs.autorun import CronTrigger
from asyncjobs.cron import Cron
from asyncjobs.timezones import zone
from tests.conftest import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
MakeJobs = Callable[..., asyncjobs.Jobs]


def utc(month: int, day: int, hour: int = 0, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def fires(expr: str, start: datetime, count: int, tz: tzinfo) -> list[datetime]:
    cron, out, moment = Cron(expr), [], start
    for _ in range(count):
        moment = cron.next_after(moment, tz)
        out.append(moment)
    return out


# --- the nights the tests cross, checked rather than remembered ------------------------------


def test_transition_nights_of_2026() -> None:
    # Berlin: 02:00 CET -> 03:00 CEST on 29 March, 03:00 CEST -> 02:00 CET on 25 October.
    assert utc(3, 29, 0, 59).astimezone(BERLIN).hour == 1
    assert utc(3, 29, 1).astimezone(BERLIN).hour == 3
    assert utc(10, 25, 0, 30).astimezone(BERLIN).timetuple()[3:5] == (2, 30)
    assert utc(10, 25, 1, 30).astimezone(BERLIN).timetuple()[3:5] == (2, 30)
    # New York: 02:00 EST -> 03:00 EDT on 8 March, 02:00 EDT -> 01:00 EST on 1 November.
    assert utc(3, 8, 6, 59).astimezone(NEW_YORK).hour == 1
    assert utc(3, 8, 7).astimezone(NEW_YORK).hour == 3
    assert utc(11, 1, 5, 30).astimezone(NEW_YORK).timetuple()[3:5] == (1, 30)
    assert utc(11, 1, 6, 30).astimezone(NEW_YORK).timetuple()[3:5] == (1, 30)


# --- next_after -----------------------------------------------------------------------------


def test_a_daily_time_follows_the_wall_clock_across_both_nights() -> None:
    spring = fires("0 3 * * *", utc(3, 27, 12), 3, BERLIN)
    assert spring == [utc(3, 28, 2), utc(3, 29, 1), utc(3, 30, 1)]
    autumn = fires("0 3 * * *", utc(10, 23, 12), 3, BERLIN)
    assert autumn == [utc(10, 24, 1), utc(10, 25, 2), utc(10, 26, 2)]


def test_a_time_that_does_not_exist_is_skipped_that_day() -> None:
    assert fires("30 2 * * *", utc(3, 27, 12), 2, BERLIN) == [utc(3, 28, 1, 30), utc(3, 30, 0, 30)]
    assert fires("30 2 * * *", utc(3, 6, 12), 2, NEW_YORK) == [utc(3, 7, 7, 30), utc(3, 9, 6, 30)]


def test_a_time_that_occurs_twice_fires_once_at_its_first_occurrence() -> None:
    # Berlin repeats 02:00-02:59 (first CEST, then CET); New York repeats 01:00-01:59.
    assert fires("30 2 * * *", utc(10, 24, 12), 2, BERLIN) == [
        utc(10, 25, 0, 30),
        utc(10, 26, 1, 30),
    ]
    assert fires("30 1 * * *", utc(10, 31, 12), 2, NEW_YORK) == [
        utc(11, 1, 5, 30),
        utc(11, 2, 6, 30),
    ]


def test_asking_during_the_second_pass_of_a_repeated_hour_does_not_fire_it_again() -> None:
    second_pass = utc(10, 25, 1, 10)  # 02:10 CET, after 02:30 CEST fired at 00:30 UTC
    assert Cron("30 2 * * *").next_after(second_pass, BERLIN) == utc(10, 26, 1, 30)
    assert Cron("*/20 * * * *").next_after(second_pass, BERLIN) == utc(10, 25, 2)


def test_frequent_crons_across_the_nights() -> None:
    # Spring: 01:30 CET, then the clock jumps to 03:00 CEST, half an hour later.
    assert fires("*/30 * * * *", utc(3, 29, 0, 10), 3, BERLIN) == [
        utc(3, 29, 0, 30),
        utc(3, 29, 1),
        utc(3, 29, 1, 30),
    ]
    # Autumn: 02:00 and 02:30 fire in the first pass only; 03:00 CET is 02:00 UTC.
    assert fires("*/30 * * * *", utc(10, 24, 23, 50), 4, BERLIN) == [
        utc(10, 25, 0),
        utc(10, 25, 0, 30),
        utc(10, 25, 2),
        utc(10, 25, 2, 30),
    ]


def test_seconds_crons_work_in_a_zone() -> None:
    assert Cron("15 0 3 * * *").next_after(utc(3, 28, 12), BERLIN) == utc(3, 29, 1) + timedelta(
        seconds=15
    )


# --- latest_not_after -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "moment", "tz", "expected"),
    [
        ("30 2 * * *", utc(3, 29, 1, 10), BERLIN, utc(3, 28, 1, 30)),  # today's 02:30 never was
        ("30 2 * * *", utc(10, 25, 0, 20), BERLIN, utc(10, 24, 0, 30)),  # first pass, before it
        ("30 2 * * *", utc(10, 25, 1, 10), BERLIN, utc(10, 25, 0, 30)),  # second pass, after it
        ("30 2 * * *", utc(10, 25, 1, 40), BERLIN, utc(10, 25, 0, 30)),
        ("30 2 * * *", utc(3, 8, 12), NEW_YORK, utc(3, 7, 7, 30)),
        ("30 1 * * *", utc(11, 1, 6, 40), NEW_YORK, utc(11, 1, 5, 30)),
        ("0 3 * * *", utc(3, 29, 1), BERLIN, utc(3, 29, 1)),  # at or before: the tick itself
    ],
)
def test_latest_not_after_in_a_zone(
    expr: str, moment: datetime, tz: tzinfo, expected: datetime
) -> None:
    assert Cron(expr).latest_not_after(moment, tz) == expected


# --- a brute-force cross-check over both nights ------------------------------------------------


def matches(cron: Cron, wall: datetime) -> bool:
    """Whether the wall-clock minute ``wall`` (naive) matches ``cron``'s fields."""
    labelled = wall.replace(tzinfo=UTC)
    return cron.next_after(labelled - timedelta(seconds=1)) == labelled


def expected_fires(cron: Cron, tz: ZoneInfo, start: datetime, hours: int) -> list[datetime]:
    """Every UTC minute whose wall time matches, once: a repeated wall time fires at fold 0."""
    out = []
    for minute in range(hours * 60):
        moment = start + timedelta(minutes=minute)
        local = moment.astimezone(tz)
        if local.fold == 0 and matches(cron, local.replace(tzinfo=None)):
            out.append(moment)
    return out


NIGHTS = [
    (BERLIN, utc(3, 28, 20)),
    (BERLIN, utc(10, 24, 20)),
    (NEW_YORK, utc(3, 8, 0)),
    (NEW_YORK, utc(10, 31, 23)),
]
EXPRESSIONS = ["*/7 * * * *", "0,30 1-3 * * *", "15 * * * *", "59 1 * * *", "0 2 * * 0"]


@pytest.mark.parametrize("expr", EXPRESSIONS)
@pytest.mark.parametrize(("tz", "start"), NIGHTS)
def test_brute_force_agrees_across_the_nights(expr: str, tz: ZoneInfo, start: datetime) -> None:
    cron = Cron(expr)
    expected = expected_fires(cron, tz, start, hours=12)
    got, moment = [], start - timedelta(seconds=1)
    while True:
        moment = cron.next_after(moment, tz)
        if moment >= start + timedelta(hours=12):
            break
        got.append(moment)
    assert got == expected
    rng = random.Random(expr)
    for _ in range(40):
        probe = start + timedelta(seconds=rng.randrange(12 * 3600))
        before = [fire for fire in expected if fire <= probe]
        if before:
            assert cron.latest_not_after(probe, tz) == before[-1]


def test_utc_and_no_zone_give_the_same_times() -> None:
    cron = Cron("30 2 * * *")
    assert cron.next_after(utc(3, 29), UTC) == cron.next_after(utc(3, 29)) == utc(3, 29, 2, 30)
    assert cron.next_after(utc(3, 29), zone("UTC")) == utc(3, 29, 2, 30)


# --- zone names ------------------------------------------------------------------------------


def test_zone_names_are_iana_names() -> None:
    assert zone("Europe/Berlin") == BERLIN
    assert zone("UTC").utcoffset(None) == timedelta(0)


@pytest.mark.parametrize("name", ["Mars/Olympus", "", "CEST+2", "../etc/passwd"])
def test_unknown_zones_are_a_value_error_at_definition(name: str) -> None:
    for define in (
        lambda: asyncjobs.Schedule("0 3 * * *", timezone=name),
        lambda: asyncjobs.AutoRun(timezone=name),
    ):
        with pytest.raises(ValueError, match="time zone") as caught:
            define()
        assert "\n" not in str(caught.value)


def test_a_zone_that_is_not_a_string_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="timezone"):
        asyncjobs.Schedule("0 3 * * *", timezone=BERLIN)  # type: ignore[arg-type]


def test_definitions_default_to_utc() -> None:
    assert asyncjobs.Schedule("0 3 * * *").timezone == "UTC"
    assert asyncjobs.AutoRun().timezone == "UTC"


# --- schedules and autoRun timers ------------------------------------------------------------


async def _noop() -> None:
    return None


def nightly(cron: str, tz: str) -> asyncjobs.Task:
    return asyncjobs.Task("nightly", _noop, schedule=asyncjobs.Schedule(cron, timezone=tz))


async def _tick_after_running(jobs: asyncjobs.Jobs, clock: FakeClock, at: datetime) -> datetime:
    """Move the clock to ``at``, run what is due, handle schedules; the new job's tick."""
    clock.now = at
    await jobs.run()
    assert (await jobs.handle_schedules()).queued == [("nightly", "default")]
    (job,) = await jobs.find(where={"task_slug": "nightly"}, order="-id", limit=1)
    assert job.status in ("queued", "waiting")
    assert job.wait_until is not None
    return job.wait_until


async def test_a_schedule_at_three_in_berlin_across_spring_forward(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[nightly("0 3 * * *", "Europe/Berlin")])
    ticks = [await _tick_after_running(jobs, clock, utc(3, 27, 12))]
    for _ in range(2):
        ticks.append(await _tick_after_running(jobs, clock, ticks[-1]))
    assert ticks == [utc(3, 28, 2), utc(3, 29, 1), utc(3, 30, 1)]


async def test_a_schedule_in_the_repeated_hour_fires_once_in_new_york(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[nightly("30 1 * * *", "America/New_York")])
    first = await _tick_after_running(jobs, clock, utc(10, 31, 12))
    assert first == utc(11, 1, 5, 30)
    # Run it, then ask again during the second 01:30 (06:30 UTC): the next tick is tomorrow.
    assert await _tick_after_running(jobs, clock, utc(11, 1, 6, 31)) == utc(11, 2, 6, 30)


async def test_schedule_catch_up_uses_the_zone(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[nightly("30 2 * * *", "Europe/Berlin")])
    assert await _tick_after_running(jobs, clock, utc(3, 27, 12)) == utc(3, 28, 1, 30)
    # Down for three days: one catch-up tick, the latest 02:30 that happened.
    assert await _tick_after_running(jobs, clock, utc(3, 31, 12)) == utc(3, 31, 0, 30)


def test_autorun_timers_read_their_cron_in_the_entry_zone() -> None:
    entry = asyncjobs.AutoRun(cron="30 2 * * *", timezone="Europe/Berlin")
    trigger = CronTrigger(Cron(entry.cron), entry.zone)
    assert trigger.get_next_fire_time(None, utc(3, 28, 12)) == utc(3, 30, 0, 30)
    assert trigger.get_next_fire_time(utc(10, 25, 0, 30), utc(10, 25, 0, 30)) == utc(10, 26, 1, 30)
