"""Schedule state: the last enqueued tick of each schedule, claimed together with its job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters, inserts
from asyncjobs.storage.base import Row, ScheduledTick
from asyncjobs.storage.codec import Compiled
from asyncjobs.storage.errors import translated
from asyncjobs.storage.inserts import Fetch
from asyncjobs.storage.provided import Provided
from asyncjobs.storage.tables import jobs, schedules


class ScheduleState(Provided):
    """The store's schedule methods; what they need of the store is declared at the end."""

    @translated
    async def last_ticks(self, keys: Sequence[str]) -> dict[str, datetime]:
        """The last enqueued tick of each of ``keys`` that has one."""
        stmt = select(schedules.c.key, schedules.c.last_tick).where(
            schedules.c.key.in_(keys), schedules.c.last_tick.is_not(None)
        )
        async with self.read() as conn:
            return {key: tick for key, tick in await conn.execute(stmt)}

    @translated
    async def count_unfinished_scheduled(self, *, slug: str, queue: str) -> int:
        """Scheduled jobs of ``slug`` on ``queue`` that are neither completed nor failed for
        good."""
        async with self.read() as conn:
            return await _count_unfinished(conn, slug, queue)

    @translated
    async def enqueue_tick(self, tick: ScheduledTick) -> list[Row] | None:
        """Record ``tick.tick`` as the last tick of ``tick.key`` and insert ``tick.rows``, in
        one transaction.

        ``only_if_idle`` is checked in that transaction under a lock on the pair, so instances
        that propose different ticks (their calls straddling a cron time) cannot both enqueue.

        Returns:
            The stored rows, or ``None`` when ``tick`` (or a later one) was already taken, by
            this instance or another, or a scheduled job is unfinished; then nothing is written.
        """
        async with self.held_transaction() as fetch:
            if tick.only_if_idle is not None:
                slug, queue = tick.only_if_idle
                for statement in self.inserts.lock("schedule", [f"{queue}\0{slug}"]):
                    await fetch(*statement)
                if (await self._driver_sql(fetch, _unfinished(slug, queue)))[0][0]:
                    return None
            if not await self._driver_sql(fetch, self._advance(tick.key, tick.tick, tick.now)):
                return None
            return await inserts.insert(fetch, self.inserts, tick.rows, tick.supersede, tick.now)

    async def _driver_sql(self, fetch: Fetch, statement: Any) -> Sequence[Sequence[Any]]:
        """Run a SQLAlchemy statement through ``fetch``, compiled to the driver's SQL."""
        compiled = Compiled(statement, self.codec.dialect)
        return await fetch(compiled.sql, compiled.args({}))

    def _advance(self, key: str, tick: datetime, now: datetime) -> Any:
        """Move ``key`` forward to ``tick`` unless it is already there or beyond.

        Concurrent callers queue on the row lock (PostgreSQL) or the write lock (SQLite), and
        each re-reads the committed ``last_tick`` before deciding, so exactly one of them wins
        a tick.
        """
        stmt = self.upsert(schedules).values(key=key, last_tick=tick, updated_at=now)
        return stmt.on_conflict_do_update(
            index_elements=[schedules.c.key],
            set_={"last_tick": stmt.excluded.last_tick, "updated_at": stmt.excluded.updated_at},
            where=or_(
                schedules.c.last_tick.is_(None), schedules.c.last_tick < stmt.excluded.last_tick
            ),
        ).returning(schedules.c.key)

    # -- what the store provides ---------------------------------------------------------

    def upsert(self, table: Table) -> Any:
        raise NotImplementedError


async def _count_unfinished(conn: AsyncConnection, slug: str, queue: str) -> int:
    return int((await conn.execute(_unfinished(slug, queue))).scalar_one())


def _unfinished(slug: str, queue: str) -> Any:
    """How many scheduled jobs of ``slug`` on ``queue`` are unfinished."""
    return (
        select(func.count())
        .select_from(jobs)
        .where(
            jobs.c.queue == queue,
            or_(jobs.c.task_slug == slug, jobs.c.workflow_slug == slug),
            filters.unfinished(),
            jobs.c.meta["scheduled"].as_boolean() == true(),
        )
    )
