"""Tests for asyncjobs.cron: parsing, fire-time search, and a brute-force cross-check."""

from __future__ import annotations

import random
import re
from bisect import bisect_right
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from itertools import pairwise

import pytest

from asyncjobs import cli
from asyncjobs.cron import Cron, parse

SECOND = timedelta(seconds=1)
MICRO = timedelta(microseconds=1)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def fires(expr: str, start: datetime, count: int) -> list[datetime]:
    cron, out, moment = Cron(expr), [], start
    for _ in range(count):
        moment = cron.next_after(moment)
        out.append(moment)
    return out


def cron_dow(moment: datetime) -> int:
    """Day of week numbered as in crontab: Sunday 0, Monday 1 ... Saturday 6."""
    return moment.isoweekday() % 7


# --- calendar facts the tests rely on, checked rather than remembered -------------------------


def test_calendar_anchors() -> None:
    assert utc(2026, 11, 22).weekday() == 6  # Sunday
    assert utc(2026, 3, 1).weekday() == 6  # Sunday
    assert utc(2027, 1, 1).weekday() == 4  # Friday


# --- fields, names and calendars ----------------------------------------------------------


def test_weekly_monday_morning() -> None:
    got = fires("0 9 * * 1", utc(2026, 11, 22, 12), 5)
    assert got[0] == utc(2026, 11, 23, 9)
    for moment in got:
        assert moment.weekday() == 0
        assert (moment.hour, moment.minute, moment.second) == (9, 0, 0)
    assert all(b - a == timedelta(days=7) for a, b in pairwise(got))


def test_weekdays_only_never_on_weekend() -> None:
    got = fires("0 8 * * 1-5", utc(2026, 11, 22), 30)
    assert all(moment.weekday() < 5 and moment.hour == 8 for moment in got)
    assert len({moment.date() for moment in got}) == 30
    # Six working weeks: Monday of the first to Friday of the sixth.
    assert got[-1] - got[0] == timedelta(days=39)


def test_every_thirty_seconds() -> None:
    got = fires("*/30 * * * * *", utc(2026, 11, 22, 23, 59, 1), 10)
    assert got[0] == utc(2026, 11, 22, 23, 59, 30)
    assert all(b - a == timedelta(seconds=30) for a, b in pairwise(got))


@pytest.mark.parametrize("expr", ["0 0 * * 0", "0 0 * * 7", "0 0 * * sun", "0 0 * * SUN"])
def test_sunday_spellings(expr: str) -> None:
    got = fires(expr, utc(2026, 11, 1, 1), 4)
    assert got == [utc(2026, 11, d) for d in (8, 15, 22, 29)]


def test_day_names_in_a_range_are_case_insensitive() -> None:
    got = fires("0 12 * * MON-Fri", utc(2026, 11, 20, 13), 3)  # Friday afternoon
    assert got == [utc(2026, 11, 23, 12), utc(2026, 11, 24, 12), utc(2026, 11, 25, 12)]


def test_month_names() -> None:
    assert Cron("0 0 1 jan *").next_after(utc(2026, 11, 22)) == utc(2027, 1, 1)
    got = fires("0 0 1 jan,JUL *", utc(2026, 1, 1), 3)
    assert got == [utc(2026, 7, 1), utc(2027, 1, 1), utc(2027, 7, 1)]
    got = fires("0 0 15 jan-mar *", utc(2026, 11, 22), 4)
    assert got == [utc(2027, 1, 15), utc(2027, 2, 15), utc(2027, 3, 15), utc(2028, 1, 15)]


def test_dom_and_dow_both_restricted_means_either() -> None:
    got = fires("0 0 1 * mon", utc(2026, 11, 22), 7)
    assert got == [
        utc(2026, 11, 23),
        utc(2026, 11, 30),
        utc(2026, 12, 1),  # a Tuesday: matched by day-of-month
        utc(2026, 12, 7),
        utc(2026, 12, 14),
        utc(2026, 12, 21),
        utc(2026, 12, 28),
    ]


def test_star_step_in_dom_still_ands_with_dow() -> None:
    # Vixie cron treats a field that starts with "*" as unrestricted for the OR rule.
    got = fires("0 0 */2 * mon", utc(2026, 11, 1), 4)
    assert all(m.weekday() == 0 and m.day % 2 == 1 for m in got)
    assert got[0] == utc(2026, 11, 9)


def test_star_step_in_dow_restricts_days() -> None:
    got = fires("0 0 * * */2", utc(2026, 11, 22), 4)  # 0,2,4,6: Sun, Tue, Thu, Sat
    assert [cron_dow(m) for m in got] == [2, 4, 6, 0]


def test_minute_steps() -> None:
    assert [m.minute for m in fires("*/15 * * * *", utc(2026, 11, 22, 9), 5)] == [
        15,
        30,
        45,
        0,
        15,
    ]
    assert [m.minute for m in fires("5-50/15 * * * *", utc(2026, 11, 22, 9), 5)] == [
        5,
        20,
        35,
        50,
        5,
    ]
    assert [m.minute for m in fires("40/7 * * * *", utc(2026, 11, 22, 9), 4)] == [40, 47, 54, 40]


def test_lists_mix_values_ranges_and_steps() -> None:
    got = fires("0 1,3-4,*/10 * * *", utc(2026, 11, 22), 6)
    assert [m.hour for m in got] == [1, 3, 4, 10, 20, 0]


def test_leap_day() -> None:
    cron = Cron("0 0 29 2 *")
    assert cron.next_after(utc(2026, 11, 22)) == utc(2028, 2, 29)
    assert cron.next_after(utc(2028, 2, 29)) == utc(2032, 2, 29)
    assert cron.latest_not_after(utc(2026, 11, 22)) == utc(2024, 2, 29)
    # 2100 is not a leap year.
    assert cron.next_after(utc(2096, 3, 1)) == utc(2104, 2, 29)


def test_month_end_rollover() -> None:
    got = fires("0 0 31 * *", utc(2026, 1, 31), 3)
    assert got == [utc(2026, 3, 31), utc(2026, 5, 31), utc(2026, 7, 31)]
    assert Cron("30 23 * * *").next_after(utc(2026, 2, 28, 23, 30)) == utc(2026, 3, 1, 23, 30)
    last_days = Cron("0 0 28-31 * *")
    assert last_days.latest_not_after(utc(2026, 3, 1)) == utc(2026, 2, 28)


def test_year_rollover() -> None:
    assert Cron("* * * * *").next_after(utc(2026, 12, 31, 23, 59)) == utc(2027, 1, 1)
    assert Cron("* * * * * *").next_after(utc(2026, 12, 31, 23, 59, 59)) == utc(2027, 1, 1)
    assert Cron("* * * * *").latest_not_after(utc(2027, 1, 1) - MICRO) == utc(2026, 12, 31, 23, 59)


@pytest.mark.parametrize(
    ("nickname", "expr"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@HOURLY", "0 * * * *"),
    ],
)
def test_nicknames(nickname: str, expr: str) -> None:
    start = utc(2026, 11, 22, 7, 30)
    assert fires(nickname, start, 3) == fires(expr, start, 3)
    assert not Cron(nickname).has_seconds


def test_whitespace_between_fields() -> None:
    cron = Cron("  0\t9  *   * \t 1 \n")
    assert cron.next_after(utc(2026, 11, 22)) == utc(2026, 11, 23, 9)


# --- boundaries and time handling -----------------------------------------------------------


def test_next_after_is_strictly_after_an_exact_fire_time() -> None:
    cron = Cron("0 9 * * *")
    assert cron.next_after(utc(2026, 11, 22, 9)) == utc(2026, 11, 23, 9)
    assert cron.next_after(utc(2026, 11, 22, 9) - MICRO) == utc(2026, 11, 22, 9)


def test_latest_not_after_is_inclusive() -> None:
    cron = Cron("0 9 * * *")
    assert cron.latest_not_after(utc(2026, 11, 22, 9)) == utc(2026, 11, 22, 9)
    assert cron.latest_not_after(utc(2026, 11, 22, 9) - MICRO) == utc(2026, 11, 21, 9)
    assert cron.latest_not_after(utc(2026, 11, 22, 9) + MICRO) == utc(2026, 11, 22, 9)


def test_microseconds_with_seconds_field() -> None:
    cron = Cron("* * * * * *")
    moment = utc(2026, 11, 22, 12, 0, 0, 500_000)
    assert cron.next_after(moment) == utc(2026, 11, 22, 12, 0, 1)
    assert cron.latest_not_after(moment) == utc(2026, 11, 22, 12, 0, 0)


def test_results_are_utc_and_other_zones_are_converted() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 10:30 at +02:00 is 08:30 UTC, so 09:00 UTC the same day is still ahead.
    got = Cron("0 9 * * *").next_after(datetime(2026, 11, 22, 10, 30, tzinfo=plus_two))
    assert got == utc(2026, 11, 22, 9)
    assert got.tzinfo is UTC
    assert got.microsecond == 0


@pytest.mark.parametrize("method", ["next_after", "latest_not_after"])
def test_naive_moment_is_rejected(method: str) -> None:
    with pytest.raises(ValueError, match="naive"):
        getattr(Cron("* * * * *"), method)(datetime(2026, 11, 22))


NEVER = ["0 0 30 2 *", "0 0 31 4 *", "0 0 31 4,6,9,11 *", "0 0 30-31 feb *", "0 0 30 2 */2"]


@pytest.mark.parametrize("expr", NEVER)
def test_an_expression_that_can_never_fire_is_refused_naming_it(expr: str) -> None:
    with pytest.raises(ValueError, match=f"cron expression '{re.escape(expr)}' never fires"):
        Cron(expr)


@pytest.mark.parametrize("expr", ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 * *", "0 0 31 2,3 *"])
def test_rare_but_possible_dates_are_accepted(expr: str) -> None:
    assert Cron(expr).next_after(utc(2026, 11, 22)) > utc(2026, 11, 22)


def test_the_command_line_refuses_a_cron_that_never_fires(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["run", "--app", "app:jobs", "--cron", "0 0 30 2 *"]) == 2
    out = capsys.readouterr()
    assert out.err.startswith("asyncjobs: error: ")
    assert "'0 0 30 2 *' never fires" in out.err
    assert (out.err.count("\n"), out.out) == (1, "")


def test_edges_of_the_representable_calendar() -> None:
    first, last = datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC)
    cron = Cron("* * * * *")
    assert cron.latest_not_after(last) == utc(9999, 12, 31, 23, 59)
    assert cron.latest_not_after(first + SECOND) == first
    with pytest.raises(ValueError, match="never fires"):
        cron.next_after(last)
    with pytest.raises(ValueError, match="never fires"):
        Cron("59 23 * * *").latest_not_after(first + SECOND)


# --- identity ---------------------------------------------------------------------------------


def test_identity_and_flags() -> None:
    assert Cron("0 9 * * 1") == Cron("0 9 * * 1")
    assert Cron("0 9 * * 1") != Cron("0 9 * * mon")
    assert hash(Cron("0 9 * * 1")) == hash(Cron("0 9 * * 1"))
    assert len({Cron("@daily"), Cron("@daily"), Cron("0 0 * * *")}) == 2
    assert Cron("* * * * *") != "* * * * *"
    assert repr(Cron("*/5 * * * *")) == "Cron('*/5 * * * *')"
    assert Cron("*/5 * * * *").expr == "*/5 * * * *"
    assert not Cron("* * * * *").has_seconds
    assert Cron("* * * * * *").has_seconds


def test_parse_is_cached() -> None:
    assert parse("0 9 * * 1") is parse("0 9 * * 1")
    assert parse("0 9 * * 1") == Cron("0 9 * * 1")


# --- invalid expressions ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "detail"),
    [
        ("61 * * * *", "minute value 61 out of range 0-59"),
        ("60 * * * * *", "second value 60 out of range 0-59"),
        ("* 24 * * *", "hour value 24 out of range 0-23"),
        ("* * 0 * *", "day-of-month value 0 out of range 1-31"),
        ("* * 32 * *", "day-of-month"),
        ("* * * 13 *", "month value 13 out of range 1-12"),
        ("* * * * 8", "day-of-week value 8 out of range 0-7"),
        ("5-1 * * * *", "reversed"),
        ("fri-mon * * * *", "minute"),
        ("* * * * fri-mon", "reversed"),
        ("*/0 * * * *", "step"),
        ("1-5/0 * * * *", "step"),
        ("*/x * * * *", "step"),
        ("*/ * * * *", "step"),
        ("1,,2 * * * *", "empty"),
        ("1, * * * *", "empty"),
        ("* * * foo *", "month value 'foo'"),
        ("* * * * funday", "day-of-week value 'funday'"),
        ("* * * * jan", "day-of-week value 'jan'"),
        ("* * * mon *", "month value 'mon'"),
        ("* * L * *", "day-of-month"),
        ("* * 15W * *", "day-of-month"),
        ("* * * * 5#3", "day-of-week"),
        ("* * ? * *", "day-of-month"),
        ("-5 * * * *", "minute"),
        ("1-2-3 * * * *", "minute"),
        ("** * * * *", "minute"),
        ("\u0661 * * * *", "minute"),  # a non-ASCII digit
        ("* * * *", "expected 5 or 6 fields, got 4"),
        ("* * * * * * *", "expected 5 or 6 fields, got 7"),
        ("", "got 0"),
        ("   ", "got 0"),
        ("@reboot", "nickname"),
        ("@daily 5", "nickname"),
        ("garbage", "got 1"),
    ],
)
def test_invalid_expressions(expr: str, detail: str) -> None:
    with pytest.raises(ValueError) as info:
        Cron(expr)
    message = str(info.value)
    assert message.startswith(f"invalid cron expression {expr!r}: ")
    assert detail in message
    with pytest.raises(ValueError):
        parse(expr)


def test_error_message_matches_documented_example() -> None:
    with pytest.raises(ValueError) as info:
        Cron("61 * * * *")
    assert str(info.value) == (
        "invalid cron expression '61 * * * *': minute value 61 out of range 0-59"
    )


def test_non_string_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Cron(5)  # type: ignore[arg-type]


# --- brute-force cross-check ----------------------------------------------------------------

Predicate = Callable[[datetime], bool]


def at(hour: int | None = None, minute: int = 0, second: int = 0) -> Predicate:
    """Time-of-day part of a reference predicate; ``hour=None`` means every hour."""
    return lambda t: (hour is None or t.hour == hour) and (t.minute, t.second) == (minute, second)


# Each case is an expression and an independent, hand-written statement of when it fires.
MINUTE_CASES: list[tuple[str, Predicate]] = [
    ("* * * * *", lambda t: t.second == 0),
    ("*/15 * * * *", lambda t: t.minute % 15 == 0 and t.second == 0),
    ("5-50/15 * * * *", lambda t: t.minute in (5, 20, 35, 50) and t.second == 0),
    ("0 */6 * * *", lambda t: t.hour % 6 == 0 and at()(t)),
    ("10-20/5,45 3-5 * * *", lambda t: 3 <= t.hour <= 5 and t.minute in (10, 15, 20, 45)),
    ("0 9 * * 1", lambda t: t.weekday() == 0 and at(9)(t)),
    ("30 8 * * mon-fri", lambda t: t.weekday() < 5 and at(8, 30)(t)),
    ("0 12 * * 6,7", lambda t: t.weekday() >= 5 and at(12)(t)),
    ("0 0 * * */2", lambda t: cron_dow(t) % 2 == 0 and at(0)(t)),
    ("0 6 * * 5-7", lambda t: t.weekday() in (4, 5, 6) and at(6)(t)),
    ("0 6 * * 1/2", lambda t: cron_dow(t) in (1, 3, 5, 0) and at(6)(t)),
    ("0 0 1 * mon", lambda t: (t.day == 1 or t.weekday() == 0) and at(0)(t)),
    ("0 0 1-7 * 1", lambda t: (t.day <= 7 or t.weekday() == 0) and at(0)(t)),
    ("0 0 */2 * 1", lambda t: t.day % 2 == 1 and t.weekday() == 0 and at(0)(t)),
    ("15 10 1,15 * *", lambda t: t.day in (1, 15) and at(10, 15)(t)),
    ("0 0 28-31 * *", lambda t: t.day >= 28 and at(0)(t)),
    ("59 23 31 12 *", lambda t: (t.month, t.day) == (12, 31) and at(23, 59)(t)),
    ("0 * * feb,dec *", lambda t: t.month in (2, 12) and at()(t)),
    ("0 0 29 2 *", lambda t: False),
    ("@weekly", lambda t: t.weekday() == 6 and at(0)(t)),
    ("@monthly", lambda t: t.day == 1 and at(0)(t)),
]
SECOND_CASES: list[tuple[str, Predicate]] = [
    ("* * * * * *", lambda t: True),
    ("*/30 * * * * *", lambda t: t.second % 30 == 0),
    ("15,45 */10 * * * *", lambda t: t.second in (15, 45) and t.minute % 10 == 0),
    ("5/20 * 0 * * sun", lambda t: t.second in (5, 25, 45) and t.hour == 0 and t.weekday() == 6),
    ("* 59 23 31 12 *", lambda t: (t.month, t.day, t.hour, t.minute) == (12, 31, 23, 59)),
    ("0 0 0 1 * *", lambda t: t.day == 1 and at(0)(t)),
]
# Eight days across a month end (into a Sunday the 1st) and across a year end; the seconds
# windows are two hours around the same midnights.
MINUTE_WINDOWS = [(utc(2026, 2, 25), timedelta(days=8)), (utc(2026, 12, 27), timedelta(days=8))]
SECOND_WINDOWS = [
    (utc(2026, 2, 28, 23), timedelta(hours=2)),
    (utc(2026, 12, 31, 23), timedelta(hours=2)),
]


def brute_force(
    matches: Predicate, start: datetime, span: timedelta, step: timedelta
) -> list[datetime]:
    return [t for t in _steps(start, span, step) if matches(t)]


def _steps(start: datetime, span: timedelta, step: timedelta) -> Iterator[datetime]:
    for i in range(span // step):
        yield start + i * step


def check_against(cron: Cron, expected: list[datetime], start: datetime, span: timedelta) -> None:
    end = start + span
    # Walk forward from just before the window, one fire at a time.
    moment = start - MICRO
    for want in expected:
        moment = cron.next_after(moment)
        assert moment == want
    assert cron.next_after(moment) >= end
    # Walk backward from just before the window's end.
    moment = end
    for want in reversed(expected):
        moment = cron.latest_not_after(moment - MICRO)
        assert moment == want
    assert cron.latest_not_after(moment - MICRO) < start
    # Probe arbitrary instants, including ones between whole seconds.
    rng = random.Random(cron.expr)
    for _ in range(150):
        probe = start + timedelta(microseconds=rng.randrange(span // MICRO))
        i = bisect_right(expected, probe)
        after, before = cron.next_after(probe), cron.latest_not_after(probe)
        if i < len(expected):
            assert after == expected[i]
        else:
            assert after >= end
        if i > 0:
            assert before == expected[i - 1]
        else:
            assert before < start


@pytest.mark.parametrize(("start", "span"), MINUTE_WINDOWS, ids=["month-end", "year-end"])
@pytest.mark.parametrize(("expr", "matches"), MINUTE_CASES, ids=[c[0] for c in MINUTE_CASES])
def test_agrees_with_minute_brute_force(
    expr: str, matches: Predicate, start: datetime, span: timedelta
) -> None:
    expected = brute_force(matches, start, span, timedelta(minutes=1))
    check_against(Cron(expr), expected, start, span)


@pytest.mark.parametrize(("start", "span"), SECOND_WINDOWS, ids=["month-end", "year-end"])
@pytest.mark.parametrize(("expr", "matches"), SECOND_CASES, ids=[c[0] for c in SECOND_CASES])
def test_agrees_with_second_brute_force(
    expr: str, matches: Predicate, start: datetime, span: timedelta
) -> None:
    expected = brute_force(matches, start, span, SECOND)
    check_against(Cron(expr), expected, start, span)
