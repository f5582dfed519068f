"""Crontab parsing and fire-time computation (pure, clock-free; UTC or a zone's wall clock)."""

from __future__ import annotations

import calendar
import functools
from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, datetime, timedelta, tzinfo

from asyncjobs.timezones import as_utc, first_occurrence, wall_clock, zone

__all__ = ["Cron", "parse", "zone"]

# The Gregorian calendar repeats exactly every 400 years (146097 days, a whole number of
# weeks), so a pattern that has no fire time in that window never fires at all.
_HORIZON_MONTHS = 400 * 12 + 1

_MONTH_NAMES = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}

_NICKNAMES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_Time = tuple[int, int, int]
_START_OF_DAY: _Time = (0, 0, 0)
_END_OF_DAY: _Time = (23, 59, 59)


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    lo: int
    hi: int
    names: Mapping[str, int]


_SECOND = _FieldSpec("second", 0, 59, {})
_MINUTE = _FieldSpec("minute", 0, 59, {})
_HOUR = _FieldSpec("hour", 0, 23, {})
_DOM = _FieldSpec("day-of-month", 1, 31, {})
_MONTH = _FieldSpec("month", 1, 12, _MONTH_NAMES)
# 7 is accepted as a second spelling of Sunday and folded onto 0 after expansion.
_DOW = _FieldSpec("day-of-week", 0, 7, _DAY_NAMES)
_SPECS = (_SECOND, _MINUTE, _HOUR, _DOM, _MONTH, _DOW)


class Cron:
    """A parsed crontab expression, evaluated in UTC or in a time zone's wall clock.

    Accepts the 5-field form ``minute hour day-of-month month day-of-week`` (fires at second
    0), the 6-field form with a leading seconds field, and the nicknames ``@yearly``,
    ``@annually``, ``@monthly``, ``@weekly``, ``@daily``, ``@midnight`` and ``@hourly``.
    Day-of-month and day-of-week combine as in Vixie cron: when both are restricted (neither
    starts with ``*``) a day matches if either matches, otherwise both must match.

    With a ``zone``, the fields are read in that zone's wall-clock time: a wall time that does
    not exist (the hour skipped when clocks spring forward) never fires, and one that occurs
    twice (clocks falling back) fires once, at its first occurrence. Results are always UTC.

    Attributes:
        expr: The expression exactly as given.
        has_seconds: True for the 6-field form.
    """

    def __init__(self, expr: str) -> None:
        """Parse ``expr``.

        Args:
            expr: A crontab expression.

        Raises:
            TypeError: ``expr`` is not a string.
            ValueError: ``expr`` is malformed (the message quotes it and names the bad field),
                or no date can ever match it (``0 0 30 2 *``).
        """
        if not isinstance(expr, str):
            raise TypeError(f"cron expression must be a str, got {type(expr).__name__}")
        self.expr = expr
        try:
            fields, self.has_seconds = _split_fields(expr)
            values = [_parse_field(text, spec) for text, spec in zip(fields, _SPECS, strict=True)]
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {expr!r}: {exc}") from None
        seconds, minutes, hours, doms, months, dows = values
        self._times = (hours, minutes, seconds)
        self._months = frozenset(months)
        self._days = _days_table(frozenset(doms), frozenset(d % 7 for d in dows), fields)
        if not self._fires_some_day():
            raise ValueError(
                f"cron expression {expr!r} never fires: no date matches its day-of-month, "
                "month and day-of-week fields"
            )

    def _fires_some_day(self) -> bool:
        """Whether some date ever matches; every weekday starts every month length sometime."""
        return any(
            self._days[length, first]
            for month in self._months
            for length in {calendar.monthrange(year, month)[1] for year in (2023, 2024)}
            for first in range(7)
        )

    def next_after(self, moment: datetime, zone: tzinfo | None = None) -> datetime:
        """The first fire time strictly after ``moment`` (aware, any zone), as an aware UTC
        datetime with zero microseconds; ``zone`` is the wall clock the fields are read in
        (``None``: UTC). ``ValueError`` if ``moment`` is naive or nothing fires after it."""
        start = as_utc(moment)
        if zone is not None and zone is not UTC:
            return self._next_in_zone(start, zone)
        # Fire times are whole seconds, so "strictly after" is ">= the next whole second";
        # a seconds floor of 60 carries into the next minute inside the search.
        floor = (start.hour, start.minute, start.second + 1)
        found = self._forward(start.year, start.month, start.day, floor)
        if found is None:
            raise ValueError(f"cron expression {self.expr!r} never fires after {moment}")
        return found

    def latest_not_after(self, moment: datetime, zone: tzinfo | None = None) -> datetime:
        """The latest fire time at or before ``moment``, read like ``next_after``;
        ``ValueError`` if ``moment`` is naive or nothing fired up to it."""
        end = as_utc(moment)
        if zone is not None and zone is not UTC:
            return self._latest_in_zone(end, zone)
        ceiling = (end.hour, end.minute, end.second)
        found = self._backward(end.year, end.month, end.day, ceiling)
        if found is None:
            raise ValueError(f"cron expression {self.expr!r} never fires at or before {moment}")
        return found

    def _next_in_zone(self, moment: datetime, zone: tzinfo) -> datetime:
        # Search wall-clock times (labelled UTC) and keep the first that happens after moment.
        # Skipped candidates are a gap's times or a repeated hour's already past: at most an
        # hour of them, once or twice a year.
        wall = wall_clock(moment, zone)
        while True:
            wall = self.next_after(wall)
            fired = first_occurrence(wall, zone)
            if fired is not None and fired > moment:
                return fired

    def _latest_in_zone(self, moment: datetime, zone: tzinfo) -> datetime:
        # In the second pass of a repeated hour, later wall times of that hour already fired
        # in the first pass: start from the wall time under the first pass's offset.
        first_pass_offset = moment.astimezone(zone).replace(fold=0).utcoffset()
        wall = (moment + (first_pass_offset or timedelta(0))).replace(tzinfo=UTC)
        while True:
            wall = self.latest_not_after(wall)
            fired = first_occurrence(wall, zone)
            if fired is not None and fired <= moment:
                return fired
            wall -= timedelta(seconds=1)

    def __repr__(self) -> str:
        return f"Cron({self.expr!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cron):
            return NotImplemented
        return self.expr == other.expr

    def __hash__(self) -> int:
        return hash(self.expr)

    def _forward(self, year: int, month: int, day: int, floor: _Time) -> datetime | None:
        for _ in range(_HORIZON_MONTHS):
            if month in self._months:
                found = self._first_in_month(year, month, day, floor)
                if found is not None:
                    return found
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
            if year > MAXYEAR:
                return None
            day, floor = 1, _START_OF_DAY
        return None

    def _backward(self, year: int, month: int, day: int, ceiling: _Time) -> datetime | None:
        for _ in range(_HORIZON_MONTHS):
            if month in self._months:
                found = self._last_in_month(year, month, day, ceiling)
                if found is not None:
                    return found
            year, month = (year - 1, 12) if month == 1 else (year, month - 1)
            if year < MINYEAR:
                return None
            day, ceiling = 31, _END_OF_DAY
        return None

    def _first_in_month(self, year: int, month: int, day: int, floor: _Time) -> datetime | None:
        days = self._month_days(year, month)
        for d in days[bisect_left(days, day) :]:
            time = _first_at_or_after(self._times, floor if d == day else _START_OF_DAY)
            if time is not None:
                return _utc(year, month, d, time)
        return None

    def _last_in_month(self, year: int, month: int, day: int, ceiling: _Time) -> datetime | None:
        days = self._month_days(year, month)
        for d in reversed(days[: bisect_right(days, day)]):
            time = _last_at_or_before(self._times, ceiling if d == day else _END_OF_DAY)
            if time is not None:
                return _utc(year, month, d, time)
        return None

    def _month_days(self, year: int, month: int) -> tuple[int, ...]:
        monday_first, length = calendar.monthrange(year, month)
        return self._days[length, (monday_first + 1) % 7]


@functools.lru_cache(maxsize=512)
def parse(expr: str) -> Cron:
    """Return the ``Cron`` for ``expr``, reusing earlier parses of the same string.

    Args:
        expr: A crontab expression.

    Raises:
        ValueError: ``expr`` is malformed.
    """
    return Cron(expr)


def _utc(year: int, month: int, day: int, time: Sequence[int]) -> datetime:
    hour, minute, second = time
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def _split_fields(expr: str) -> tuple[list[str], bool]:
    """Return the six fields (seconds first) and whether the seconds field was written."""
    text = expr.strip()
    if text.startswith("@"):
        if text.lower() not in _NICKNAMES:
            raise ValueError(f"unknown nickname {text!r}")
        text = _NICKNAMES[text.lower()]
    fields = text.split()
    if len(fields) == 5:
        return ["0", *fields], False
    if len(fields) == 6:
        return fields, True
    raise ValueError(f"expected 5 or 6 fields, got {len(fields)}")


def _parse_field(text: str, spec: _FieldSpec) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        if not item:
            raise ValueError(f"{spec.name} field {text!r} has an empty list item")
        values.update(_parse_item(item, spec))
    return tuple(sorted(values))


def _parse_item(item: str, spec: _FieldSpec) -> range:
    base, slash, step_text = item.partition("/")
    step = _parse_step(step_text, spec) if slash else 1
    if base == "*":
        return range(spec.lo, spec.hi + 1, step)
    first, dash, last = base.partition("-")
    lo = _parse_value(first, spec)
    if dash:
        hi = _parse_value(last, spec)
        if lo > hi:
            raise ValueError(f"{spec.name} range {base!r} is reversed")
    else:
        # "a/n" means from a to the field's maximum in steps of n, as in croner and cronie.
        hi = spec.hi if slash else lo
    return range(lo, hi + 1, step)


def _parse_step(text: str, spec: _FieldSpec) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{spec.name} step {text!r} is not a number")
    step = int(text)
    if step == 0:
        raise ValueError(f"{spec.name} step must be at least 1")
    return step


def _parse_value(text: str, spec: _FieldSpec) -> int:
    if text.isascii() and text.isdigit():
        value = int(text)
    elif text.lower() in spec.names:
        return spec.names[text.lower()]
    else:
        raise ValueError(f"{spec.name} value {text!r} is not a number or a known name")
    if not spec.lo <= value <= spec.hi:
        raise ValueError(f"{spec.name} value {value} out of range {spec.lo}-{spec.hi}")
    return value


def _days_table(
    doms: frozenset[int], dows: frozenset[int], fields: Sequence[str]
) -> dict[tuple[int, int], tuple[int, ...]]:
    """Map (month length, weekday of the 1st with Sunday=0) to the matching days of month.

    Which days of a month match depends only on those two numbers, so the 28 possible
    months are worked out once here and the search never tests a day twice.
    """
    # Vixie cron: a field starting with "*" does not restrict; then both fields must match
    # (the "*" one always does). When both restrict, either one is enough.
    either = not fields[3].startswith("*") and not fields[5].startswith("*")
    table: dict[tuple[int, int], tuple[int, ...]] = {}
    for length in (28, 29, 30, 31):
        for first in range(7):
            table[length, first] = tuple(
                day
                for day in range(1, length + 1)
                if _day_matches(day in doms, (first + day - 1) % 7 in dows, either)
            )
    return table


def _day_matches(dom_ok: bool, dow_ok: bool, either: bool) -> bool:
    return (dom_ok or dow_ok) if either else (dom_ok and dow_ok)


def _first_at_or_after(
    fields: Sequence[tuple[int, ...]], floor: Sequence[int]
) -> tuple[int, ...] | None:
    """Smallest pick of one value per field that is >= ``floor``, comparing left to right."""
    if not fields:
        return ()
    values, rest = fields[0], fields[1:]
    i = bisect_left(values, floor[0])
    if i < len(values) and values[i] == floor[0]:
        tail = _first_at_or_after(rest, floor[1:])
        if tail is not None:
            return (values[i], *tail)
        i += 1
    if i == len(values):
        return None
    return (values[i], *(v[0] for v in rest))


def _last_at_or_before(
    fields: Sequence[tuple[int, ...]], ceiling: Sequence[int]
) -> tuple[int, ...] | None:
    """Largest pick of one value per field that is <= ``ceiling``, comparing left to right."""
    if not fields:
        return ()
    values, rest = fields[0], fields[1:]
    i = bisect_right(values, ceiling[0]) - 1
    if i >= 0 and values[i] == ceiling[0]:
        tail = _last_at_or_before(rest, ceiling[1:])
        if tail is not None:
            return (values[i], *tail)
        i -= 1
    if i < 0:
        return None
    return (values[i], *(v[-1] for v in rest))
