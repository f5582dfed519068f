"""The dashboard's statements: capped counts, per-minute charts, keyset pages, bulk actions.

Every read is bounded whatever the table holds: counts stop at ``CAP`` rows (shown as
"10,000+"), lists read one page through an index, and charts read one hour of one queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    case,
    func,
    select,
    text,
    true,
    union,
    update,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters, notify
from asyncjobs.storage.base import Row, Store
from asyncjobs.storage.dashboard_filters import CLASSES, Count, conditions, plan
from asyncjobs.storage.dashboard_stats import QueueStats, at, queue_stats
from asyncjobs.storage.errors import translated
from asyncjobs.storage.statements import retried_values
from asyncjobs.storage.tables import (
    jobs,
    row_values,
    signals,
)

LIST_COLUMNS = [c for c in jobs.c if c.name not in ("log", "processing_token")]


@dataclass(frozen=True)
class Page:
    """Rows of one page of the job list, how many jobs match in all, and whether more follow."""

    rows: list[Row]
    total: Count
    more: bool


class DashboardQueries:
    """The statements behind the dashboard's pages and actions, on one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        """A read connection that plans each statement for its values.

        PostgreSQL switches a prepared statement to a generic plan after five runs; for a
        count capped by LIMIT that plan guesses the matches plentiful and scans the table
        (80 ms instead of 2 over a million rows), so the dashboard asks for custom plans.
        """
        async with self.store.read() as conn:
            if conn.dialect.name != "postgresql":
                yield conn
                return
            await conn.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
            try:
                yield conn
            finally:
                try:
                    await conn.exec_driver_sql("RESET plan_cache_mode")
                except SQLAlchemyError:  # a lost connection: never back into the pool
                    await conn.invalidate()

    @translated
    async def queues(self) -> list[str]:
        """Every queue that holds a job: one probe per queue of each queue-led index."""
        walks = [_distinct_queues(where, f"queues_{n}") for n, where in enumerate(CLASSES)]
        async with self._read() as conn:
            found = await conn.execute(union(*walks))
            return sorted(row[0] for row in found if row[0] is not None)

    @translated
    async def queue_stats(self, queues: Sequence[str], now: datetime) -> dict[str, QueueStats]:
        """Each queue's jobs by status, oldest due job and last hour (one statement)."""
        async with self._read() as conn:
            return await queue_stats(conn, queues, now)

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
        async with self._read() as conn:
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
        async with self._read() as conn:
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
        async with self._read() as conn:
            return [row_values(r) for r in await conn.execute(stmt)]

    @translated
    async def signals(self, job_id: int, limit: int) -> list[Row]:
        """The first ``limit`` signals sent to the job (its index holds them by job)."""
        stmt = (
            select(signals.c.id, signals.c.topic, signals.c.payload, signals.c.created_at)
            .where(signals.c.job_id == job_id)
            .order_by(signals.c.id.asc())
            .limit(limit)
        )
        async with self._read() as conn:
            return [row_values(r) for r in await conn.execute(stmt)]

    async def schedule_ticks(self, keys: Sequence[str]) -> dict[str, datetime]:
        """The last enqueued tick of each schedule key that has one."""
        return await self.store.last_ticks(keys) if keys else {}

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
                wait_until=case((later, at(now)), else_=jobs.c.wait_until),
                updated_at=case((later, at(now)), else_=jobs.c.updated_at),
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


def _distinct_queues(where: tuple[ColumnElement[bool], ...], name: str) -> Any:
    """``SELECT DISTINCT queue`` of one partial index as a recursive walk through it."""
    first = select(func.min(jobs.c.queue).label("queue")).where(*where)
    walk = first.cte(name, recursive=True)
    following = select(func.min(jobs.c.queue)).where(*where, jobs.c.queue > walk.c.queue)
    walk = walk.union_all(select(following.scalar_subquery()).where(walk.c.queue.is_not(None)))
    return select(walk.c.queue)


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


async def _announce(conn: AsyncConnection, queues: Sequence[str]) -> None:
    """Wake runners in other processes for these queues (PostgreSQL), as an insert would."""
    if conn.dialect.name != "postgresql":
        return
    for queue in queues:
        await conn.execute(_NOTIFY, {"channel": notify.CHANNEL, "queue": queue})


# The payload notify.parse reads: the queue, no due time, and the sender (ignored by itself).
_NOTIFY = text("SELECT pg_notify(:channel, :queue || '  ' || current_setting('application_name'))")
