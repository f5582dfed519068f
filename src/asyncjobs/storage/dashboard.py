"""The dashboard's statements: capped counts, per-minute charts, keyset pages, bulk actions.

Every read is bounded whatever the table holds: counts stop at ``CAP`` rows (shown as
"10,000+"), lists read one page through an index, and charts read one hour of one queue.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    String,
    case,
    func,
    literal,
    select,
    text,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from asyncjobs.storage import dashboard_filters, filters, notify, schedules
from asyncjobs.storage.dashboard_filters import Count, capped_each, conditions, plan
from asyncjobs.storage.store import Row, Store, retried_values, translated
from asyncjobs.storage.tables import (
    CANCELLED,
    COMPLETED,
    FAILED,
    UTCDateTime,
    jobs,
    row_values,
)

CHART_MINUTES = 60
CHART_SAMPLE = 2_000
LIST_COLUMNS = [c for c in jobs.c if c.name not in ("log", "processing_token")]


@dataclass(frozen=True)
class Page:
    """Rows of one page of the job list, how many jobs match in all, and whether more follow."""

    rows: list[Row]
    total: Count
    more: bool


@dataclass(frozen=True)
class QueueStats:
    """One queue at a glance: jobs by status, the oldest due job, the last hour per minute."""

    queue: str
    counts: dict[str, Count]
    oldest_due: datetime | None
    completed: list[int] = field(default_factory=list)  # per minute, oldest first
    failed: list[int] = field(default_factory=list)
    failed_partial: bool = False  # the failures shown are the newest CHART_SAMPLE only


class minutes_since(FunctionElement[int]):
    """Whole minutes from a start time to a timestamp column (each backend's own arithmetic)."""

    type = Integer()
    inherit_cache = True


@compiles(minutes_since, "postgresql")
def _minutes_pg(element: minutes_since, compiler: SQLCompiler, **kw: Any) -> str:
    moment, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(floor(extract(epoch FROM ({moment} - {start})) / 60) AS INTEGER)"


@compiles(minutes_since, "sqlite")
def _minutes_sqlite(element: minutes_since, compiler: SQLCompiler, **kw: Any) -> str:
    moment, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST((julianday({moment}) - julianday({start})) * 1440 AS INTEGER)"


def _at(moment: datetime) -> Any:
    return literal(moment, UTCDateTime())


class DashboardQueries:
    """The statements behind the dashboard's pages and actions, on one ``Store``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @translated
    async def queues(self) -> list[str]:
        """Every queue that holds a job: one probe of the queue index per queue."""
        first = select(func.min(jobs.c.queue).label("queue"))
        walk = first.cte("queues", recursive=True)
        following = select(func.min(jobs.c.queue)).where(jobs.c.queue > walk.c.queue)
        walk = walk.union_all(select(following.scalar_subquery()).where(walk.c.queue.is_not(None)))
        async with self.store.read() as conn:
            found = await conn.execute(select(walk.c.queue))
            return sorted(row[0] for row in found if row[0] is not None)

    @translated
    async def queue_stats(self, queue: str, now: datetime) -> QueueStats:
        since = now - timedelta(minutes=CHART_MINUTES)
        async with self.store.read() as conn:
            counts, oldest = await _unfinished(conn, queue, now)
            on_queue = jobs.c.queue == queue
            finished = {
                "failed": [on_queue, *FAILED],
                "cancelled": [on_queue, *CANCELLED],
                "completed": [on_queue, COMPLETED],
            }
            counts.update(await capped_each(conn, finished))
            completed = await _completed_per_minute(conn, queue, since)
            failed, partial = await _failures_per_minute(conn, queue, since)
        return QueueStats(queue, counts, oldest, completed, failed, partial)

    @translated
    async def page(
        self,
        where: Mapping[str, Any] | None,
        *,
        now: datetime,
        limit: int,
        before: int | None = None,
        after: int | None = None,
    ) -> Page:
        """One page of matching jobs, newest first: older than ``before`` or newer than
        ``after``; ``more`` says whether another page follows in that direction.

        How the jobs are found: ``dashboard_filters.plan``.
        """
        async with self.store.read() as conn:
            chosen = await plan(conn, conditions(where, now))
            if chosen.dense:
                rows = await _walk(conn, chosen.terms, limit + 1, before=before, after=after)
            else:
                window = _window(chosen.ids, limit + 1, before=before, after=after)
                rows = await _by_ids(conn, window)
        more = len(rows) > limit
        rows = rows[:limit] if after is None else rows[-limit:]
        return Page(rows, chosen.total, more)

    @translated
    async def count(self, where: Mapping[str, Any] | None, now: datetime) -> Count:
        """How many jobs match, up to ``CAP``."""
        async with self.store.read() as conn:
            return (await plan(conn, conditions(where, now))).total

    @translated
    async def children(self, job_id: int, limit: int) -> list[Row]:
        """Jobs whose ``parent_id`` is ``job_id``, oldest first (none before parents exist)."""
        if "parent_id" not in jobs.c:
            return []
        stmt = (
            select(*LIST_COLUMNS)
            .where(jobs.c.parent_id == job_id)
            .order_by(jobs.c.id.asc())
            .limit(limit)
        )
        async with self.store.read() as conn:
            return [row_values(r) for r in await conn.execute(stmt)]

    async def schedule_ticks(self, keys: Sequence[str]) -> dict[str, datetime]:
        """The last enqueued tick of each schedule key that has one."""
        return await schedules.last_ticks(self.store, keys) if keys else {}

    @translated
    async def retry(self, where: Mapping[str, Any] | None, now: datetime) -> list[tuple[int, str]]:
        """Make every matching failed or cancelled job runnable again; ``(id, queue)`` each."""
        stmt = (
            update(jobs)
            .where(jobs.c.has_error == true(), jobs.c.completed_at.is_(None))
            .where(*conditions(where, now).all)
            .values(**retried_values(now))
        )
        return await self._write(stmt)

    @translated
    async def make_due(
        self, where: Mapping[str, Any] | None, now: datetime
    ) -> list[tuple[int, str]]:
        """Bring every matching unfinished, unleased job's ``wait_until`` forward to ``now``."""
        later = jobs.c.wait_until > now
        stmt = (
            update(jobs)
            .where(filters.unfinished(), filters.lease_free(now), *conditions(where, now).all)
            .values(
                wait_until=case((later, _at(now)), else_=jobs.c.wait_until),
                updated_at=case((later, _at(now)), else_=jobs.c.updated_at),
            )
        )
        return await self._write(stmt)

    async def _write(self, stmt: Any) -> list[tuple[int, str]]:
        async with self.store.write() as conn:
            changed = [
                (r[0], r[1]) for r in await conn.execute(stmt.returning(jobs.c.id, jobs.c.queue))
            ]
            await _announce(conn, sorted({queue for _, queue in changed}))
        return changed


# -- the pieces of page -------------------------------------------------------------------


async def _walk(
    conn: AsyncConnection,
    terms: list[ColumnElement[bool]],
    count: int,
    *,
    before: int | None,
    after: int | None,
) -> list[Row]:
    """Up to ``count`` matching rows next to the cursor, newest first, along the primary key."""
    stmt = select(*LIST_COLUMNS).where(*terms)
    if after is not None:
        stmt = stmt.where(jobs.c.id > after).order_by(jobs.c.id.asc())
    else:
        stmt = stmt.where(jobs.c.id < before) if before is not None else stmt
        stmt = stmt.order_by(jobs.c.id.desc())
    rows = [row_values(r) for r in await conn.execute(stmt.limit(count))]
    return rows[::-1] if after is not None else rows


def _window(ids: list[int], count: int, *, before: int | None, after: int | None) -> list[int]:
    """Of ``ids`` (newest first), ``count`` older than ``before`` or newer than ``after``."""
    if after is not None:
        return [i for i in ids if i > after][-count:]
    return [i for i in ids if before is None or i < before][:count]


async def _by_ids(conn: AsyncConnection, ids: list[int]) -> list[Row]:
    if not ids:
        return []
    stmt = select(*LIST_COLUMNS).where(jobs.c.id.in_(ids)).order_by(jobs.c.id.desc())
    return [row_values(r) for r in await conn.execute(stmt)]


# -- the pieces of queue_stats -------------------------------------------------------------


async def _unfinished(
    conn: AsyncConnection, queue: str, now: datetime
) -> tuple[dict[str, Count], datetime | None]:
    """Queued, waiting and processing among the oldest ``CAP + 1`` unfinished jobs."""
    status = case(
        (jobs.c.processing_until > now, literal("processing", String())),
        (jobs.c.wait_until > now, literal("waiting", String())),
        else_=literal("queued", String()),
    ).label("status")
    due = case(
        (jobs.c.wait_until > jobs.c.created_at, jobs.c.wait_until), else_=jobs.c.created_at
    ).label("due")
    sample = (
        select(status, due)
        .where(jobs.c.queue == queue, filters.unfinished())
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(dashboard_filters.CAP + 1)
        .subquery()
    )
    oldest = func.min(case((sample.c.status == "queued", sample.c.due)))
    stmt = select(sample.c.status, func.count(), oldest).group_by(sample.c.status)
    rows = list(await conn.execute(stmt))
    full = sum(row[1] for row in rows) > dashboard_filters.CAP
    counts = {name: Count(0, full) for name in ("queued", "waiting", "processing")}
    found: datetime | None = None
    for name, number, first in rows:
        counts[name] = Count(min(number, dashboard_filters.CAP), full)
        found = first if name == "queued" else found
    return counts, found


async def _failures_per_minute(
    conn: AsyncConnection, queue: str, since: datetime
) -> tuple[list[int], bool]:
    """Failures per minute since ``since`` among the newest ``CHART_SAMPLE`` failed jobs, by
    the time each was last updated; true when the sample may have missed some (all of it
    fell inside the chart)."""
    sample = (
        select(jobs.c.updated_at)
        .where(jobs.c.queue == queue, *FAILED)
        .order_by(jobs.c.id.desc())
        .limit(CHART_SAMPLE)
        .subquery()
    )
    minute = minutes_since(sample.c.updated_at, _at(since)).label("minute")
    stmt = select(minute, func.count()).group_by(minute)
    rows = list(await conn.execute(stmt))
    inside = sum(number for at, number in rows if at is not None and at >= 0)
    return _chart(rows), inside >= CHART_SAMPLE


async def _completed_per_minute(conn: AsyncConnection, queue: str, since: datetime) -> list[int]:
    minute = minutes_since(jobs.c.completed_at, _at(since)).label("minute")
    stmt = (
        select(minute, func.count())
        .where(jobs.c.queue == queue, COMPLETED, jobs.c.completed_at >= since)
        .group_by(minute)
    )
    return _chart(await conn.execute(stmt))


def _chart(rows: Any) -> list[int]:
    """``(minute, count)`` rows as one count per minute of the chart, oldest first."""
    chart = [0] * CHART_MINUTES
    for at, number in rows:
        if at is not None and 0 <= at <= CHART_MINUTES:  # the last minute includes "now"
            chart[min(at, CHART_MINUTES - 1)] += number
    return chart


async def _announce(conn: AsyncConnection, queues: Sequence[str]) -> None:
    """Wake runners in other processes for these queues (PostgreSQL), as an insert would."""
    if conn.dialect.name != "postgresql":
        return
    for queue in queues:
        await conn.execute(_NOTIFY, {"channel": notify.CHANNEL, "queue": queue})


# The payload notify.parse reads: the queue, no due time, and the sender (ignored by itself).
_NOTIFY = text("SELECT pg_notify(:channel, :queue || '  ' || current_setting('application_name'))")
