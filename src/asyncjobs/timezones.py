"""Time zones for cron: IANA names, and wall-clock times mapped to and from UTC."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``"UTC"``, ``"Europe/Berlin"``), as ``zoneinfo`` knows it.

    Raises:
        TypeError: ``name`` is not a string.
        ValueError: no such zone.
    """
    if not isinstance(name, str):
        raise TypeError(f"timezone must be an IANA zone name (str), got {name!r}")
    if name == "UTC":
        return UTC  # needs no time zone database
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
        ) from None


def wall_clock(moment: datetime, zone: tzinfo) -> datetime:
    """The wall-clock time ``moment`` shows in ``zone``, labelled UTC for the search."""
    return moment.astimezone(zone).replace(tzinfo=UTC, fold=0)


def first_occurrence(wall: datetime, zone: tzinfo) -> datetime | None:
    """When the wall-clock time ``wall`` (labelled UTC) first happens in ``zone``, in UTC.

    ``None`` when it never happens (skipped as clocks spring forward).
    """
    fired = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    return fired if wall_clock(fired, zone) == wall else None


def as_utc(moment: datetime) -> datetime:
    if moment.utcoffset() is None:
        raise ValueError(f"cron needs a timezone-aware datetime, got naive {moment}")
    return moment.astimezone(UTC)
