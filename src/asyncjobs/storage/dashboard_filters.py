"""The dashboard's filters as SQL, and which index finds their jobs fastest.

A filter has up to three parts an index can serve: the status (with the queue, which leads
each status's partial index), else the queue alone, and the slug. Each part is counted on its
own (up to ``CAP``: cheap, from its indexes); the smallest then leads, and the other parts are
written so that no index serves them. Up to ``CAP`` matches are read as ids through the
leading part's indexes and a page is cut from them; a filter matching more is dense enough to
find a page by walking the primary key from the newest end instead.

A queue alone has no index of its own: every job is in exactly one of four partial indexes
led by the queue (unfinished, completed, failed, cancelled), so a queue is read as four
branches, one through each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, false, func, literal, or_, select, true, union_all
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters
from asyncjobs.storage.tables import CANCELLED, COMPLETED, FAILED, jobs

CAP = 10_000
K = TypeVar("K")

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


Terms = list[ColumnElement[bool]]


@dataclass(frozen=True)
class Part:
    """One part of a filter: its ``terms``, and the ``branches`` that read it through
    indexes (their matches together are the part's)."""

    terms: Terms
    branches: list[Terms]


@dataclass(frozen=True)
class Conditions:
    """A filter as SQL, by part: ``parts`` an index can lead with, and the ``rest``."""

    parts: dict[str, Part] = field(default_factory=dict)
    rest: Terms = field(default_factory=list)
    by_id: bool = False

    @property
    def all(self) -> Terms:
        return [term for part in self.parts.values() for term in part.terms] + self.rest

    def led_by(self, name: str | None) -> list[Terms]:
        """The filter as branches through part ``name``'s indexes, every other condition in
        a form no index serves; one unindexed branch for ``None``."""
        part = self.parts.get(name or "")
        led = part.terms if part else []
        others = [_unindexed(term) for term in self.all if not any(term is t for t in led)]
        return [branch + others for branch in part.branches] if part else [others]


@dataclass(frozen=True)
class Plan:
    """How to read a filter's jobs: how many match, and either all their ids (up to ``CAP``,
    newest first) or the conditions for a walk of the primary key (``dense``)."""

    total: Count
    ids: list[int] = field(default_factory=list)
    terms: Terms = field(default_factory=list)

    @property
    def dense(self) -> bool:
        return self.total.capped


def conditions(where: Mapping[str, Any] | None, now: datetime) -> Conditions:
    """``filters.where_clause`` plus ``slug`` (the task or the workflow slug), split by part,
    with finished statuses written as the partial indexes that hold them."""
    rest = dict(where or {})
    parts: dict[str, Part] = {}
    status, queue = rest.pop("status", None), rest.pop("queue", None)
    on_queue = filters.where_clause({"queue": queue}, now) if queue is not None else []
    if status is not None:
        terms = list(_FINISHED.get(status) or [filters.status_clause(status, now)]) + on_queue
        parts["status"] = Part(terms, [terms])
    elif on_queue:
        parts["queue"] = Part(on_queue, [on_queue + list(c) for c in CLASSES])
    slug = rest.pop("slug", None)
    if slug is not None:
        terms = [or_(jobs.c.task_slug == slug, jobs.c.workflow_slug == slug)]
        parts["slug"] = Part(terms, [terms])
    for column in ("task_slug", "workflow_slug"):
        if column in rest:
            terms = filters.where_clause({column: rest.pop(column)}, now)
            parts["slug"] = Part(terms, [terms])
    return Conditions(parts, filters.where_clause(rest, now), by_id="id" in rest)


# Every job is in exactly one of these; each is a partial index led by the queue.
CLASSES: tuple[tuple[ColumnElement[bool], ...], ...] = (
    (filters.unfinished(),),
    (COMPLETED,),
    FAILED,
    CANCELLED,
)


async def plan(conn: AsyncConnection, found: Conditions) -> Plan:
    """Count the filter's parts, let the smallest lead, and read the matching ids through it.

    A filter of one part is counted first from its indexes alone, so that a dense one (the
    unfiltered list above all) sends no ids.
    """
    dense = Plan(Count(CAP, capped=True), terms=found.led_by(None)[0])
    if found.by_id or len(found.parts) + bool(found.rest) <= 1:
        name = None if found.by_id or found.rest else next(iter(found.parts), None)
        branches = found.led_by(name) if name else [found.all]
        if (await _sizes(conn, {"": branches}))[""].capped:
            return dense
    else:
        sizes = await _sizes(
            conn, {n: [p.terms + b for b in p.branches] for n, p in found.parts.items()}
        )
        branches = found.led_by(min(sizes, key=lambda name: sizes[name].value))
    ids = await _ids(conn, branches)
    if len(ids) > CAP:
        return dense
    return Plan(Count(len(ids)), ids=sorted(ids, reverse=True))


async def _sizes(conn: AsyncConnection, named: Mapping[str, list[Terms]]) -> dict[str, Count]:
    """How many rows each name's branches match together, up to ``CAP``, in one statement."""
    flat = {
        (name, n): branch for name, branches in named.items() for n, branch in enumerate(branches)
    }
    counts = await capped_each(conn, flat)
    found = {}
    for name, branches in named.items():
        each = [counts[name, n] for n in range(len(branches))]
        number = sum(count.value + count.capped for count in each)  # a capped one is CAP + 1
        found[name] = Count(min(number, CAP), number > CAP)
    return found


async def _ids(conn: AsyncConnection, branches: list[Terms]) -> list[int]:
    """Up to ``CAP + 1`` ids matching any of ``branches`` (which never overlap)."""
    selects = [select(jobs.c.id).where(*terms).limit(CAP + 1).subquery() for terms in branches]
    stmt = union_all(*(select(sub.c.id) for sub in selects)).limit(CAP + 1)
    return [row[0] for row in await conn.execute(stmt)]


async def capped_each(conn: AsyncConnection, filters_by_name: Mapping[K, Terms]) -> dict[K, Count]:
    """How many rows each filter matches, counting no further than ``CAP``, in one statement."""
    columns = [
        capped_count(where).label(f"c{n}") for n, where in enumerate(filters_by_name.values())
    ]
    numbers = (await conn.execute(select(*columns))).one()
    return {
        name: Count(min(number, CAP), number > CAP)
        for name, number in zip(filters_by_name, numbers, strict=True)
    }


def capped_count(where: list[ColumnElement[bool]]) -> Any:
    """How many rows match, up to ``CAP + 1``, as a scalar subquery."""
    # Selecting a constant lets PostgreSQL count from a partial index alone.
    sample = select(literal(1).label("one")).select_from(jobs).where(*where).limit(CAP + 1)
    return select(func.count()).select_from(sample.subquery()).scalar_subquery()


def _unindexed(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    """The same test in a form no index serves (``coalesce(c, false) = true``)."""
    return func.coalesce(condition, false()) == true()
