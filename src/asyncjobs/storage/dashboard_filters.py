"""The dashboard's filters as SQL, and which index finds their jobs fastest.

A filter has up to three parts an index can serve: the status (with the queue, which leads
each status's partial index), else the queue alone, and the slug. Each part is counted on its
own (up to ``CAP``: cheap, from its index); the smallest then leads, and the other parts are
written so that no index serves them. Up to ``CAP`` matches are read as ids through the
leading index and a page is cut from them; a filter matching more is dense enough to find a
page by walking the primary key from the newest end instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, false, func, literal, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters
from asyncjobs.storage.tables import CANCELLED, COMPLETED, FAILED, jobs

CAP = 10_000

_FINISHED: dict[str, tuple[ColumnElement[bool], ...]] = {
    "completed": (jobs.c.has_error == false(), COMPLETED),
    "failed": FAILED,
    "cancelled": CANCELLED,
}


@dataclass(frozen=True)
class Count:
    """A number of jobs; ``capped`` means "at least ``value``": counting stopped there."""

    value: int
    capped: bool = False


@dataclass(frozen=True)
class Conditions:
    """A filter as SQL, by part: ``parts`` an index can lead with, and the ``rest``."""

    parts: dict[str, list[ColumnElement[bool]]] = field(default_factory=dict)
    rest: list[ColumnElement[bool]] = field(default_factory=list)
    by_id: bool = False

    @property
    def all(self) -> list[ColumnElement[bool]]:
        return [term for part in self.parts.values() for term in part] + self.rest

    def led_by(self, name: str | None) -> list[ColumnElement[bool]]:
        """Every condition, only those of part ``name`` in a form an index can serve."""
        led = self.parts.get(name or "", [])
        return led + [_unindexed(term) for term in self.all if not any(term is t for t in led)]


@dataclass(frozen=True)
class Plan:
    """How to read a filter's jobs: how many match, and either all their ids (up to ``CAP``,
    newest first) or the conditions for a walk of the primary key (``dense``)."""

    total: Count
    ids: list[int] = field(default_factory=list)
    terms: list[ColumnElement[bool]] = field(default_factory=list)

    @property
    def dense(self) -> bool:
        return self.total.capped


def conditions(where: Mapping[str, Any] | None, now: datetime) -> Conditions:
    """``filters.where_clause`` plus ``slug`` (the task or the workflow slug), split by part,
    with finished statuses written as the partial indexes that hold them."""
    rest = dict(where or {})
    parts: dict[str, list[ColumnElement[bool]]] = {}
    status, queue = rest.pop("status", None), rest.pop("queue", None)
    queue_terms = filters.where_clause({"queue": queue}, now) if queue is not None else []
    if status is not None:
        status_terms = list(_FINISHED.get(status) or [filters.status_clause(status, now)])
        parts["status"] = status_terms + queue_terms
    elif queue_terms:
        parts["queue"] = queue_terms
    slug = rest.pop("slug", None)
    if slug is not None:
        parts["slug"] = [or_(jobs.c.task_slug == slug, jobs.c.workflow_slug == slug)]
    for column in ("task_slug", "workflow_slug"):
        if column in rest:
            parts["slug"] = filters.where_clause({column: rest.pop(column)}, now)
    return Conditions(parts, filters.where_clause(rest, now), by_id="id" in rest)


async def plan(conn: AsyncConnection, found: Conditions) -> Plan:
    """Count the filter's parts, let the smallest lead, and read the matching ids through it.

    A filter of one part is counted first from its index alone, so that a dense one (the
    unfiltered list above all) sends no ids.
    """
    if found.by_id or len(found.parts) + bool(found.rest) <= 1:
        if (await capped(conn, *found.all)).capped:
            return Plan(Count(CAP, capped=True), terms=found.led_by(None))
        terms = found.all  # one part serves itself; an id is one primary-key lookup
    else:
        sizes = await capped_each(conn, found.parts)
        leader = min(sizes, key=lambda name: sizes[name].value) if sizes else None
        terms = found.led_by(leader)
    stmt = select(jobs.c.id).where(*terms).limit(CAP + 1)
    ids = [row[0] for row in await conn.execute(stmt)]
    if len(ids) > CAP:
        return Plan(Count(CAP, capped=True), terms=found.led_by(None))
    return Plan(Count(len(ids)), ids=sorted(ids, reverse=True))


async def capped(conn: AsyncConnection, *where: ColumnElement[bool]) -> Count:
    """How many rows match, counting no further than ``CAP``."""
    return (await capped_each(conn, {"": list(where)}))[""]


async def capped_each(
    conn: AsyncConnection, filters_by_name: Mapping[str, list[ColumnElement[bool]]]
) -> dict[str, Count]:
    """:func:`capped` of several filters in one statement (one round trip)."""
    columns = [
        _capped_count(where).label(f"c{n}") for n, where in enumerate(filters_by_name.values())
    ]
    numbers = (await conn.execute(select(*columns))).one()
    return {
        name: Count(min(number, CAP), number > CAP)
        for name, number in zip(filters_by_name, numbers, strict=True)
    }


def _capped_count(where: list[ColumnElement[bool]]) -> Any:
    # Selecting a constant lets PostgreSQL count from a partial index alone.
    sample = select(literal(1).label("one")).select_from(jobs).where(*where).limit(CAP + 1)
    return select(func.count()).select_from(sample.subquery()).scalar_subquery()


def _unindexed(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The same test in a form no index serves (``coalesce(c, false) = true``)."""
    return func.coalesce(condition, false()) == true()
