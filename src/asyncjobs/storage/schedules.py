"""Schedule state: the last enqueued tick of each schedule, claimed together with its job."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import dialects, filters
from asyncjobs.storage.store import Row, Store, insert_superseding, translated
from asyncjobs.storage.tables import jobs, schedules


@translated
async def last_ticks(store: Store, keys: Sequence[str]) -> dict[str, datetime]:
    """The last enqueued tick of each of ``keys`` that has one."""
    stmt = select(schedules.c.key, schedules.c.last_tick).where(
        schedules.c.key.in_(keys), schedules.c.last_tick.is_not(None)
    )
    async with store.read() as conn:
        return {key: tick for key, tick in await conn.execute(stmt)}


@translated
async def count_unfinished_scheduled(store: Store, *, slug: str, queue: str) -> int:
    """Scheduled jobs of ``slug`` on ``queue`` that are neither completed nor failed for good."""
    async with store.read() as conn:
        return await _count_unfinished(conn, slug, queue)


async def _count_unfinished(conn: AsyncConnection, slug: str, queue: str) -> int:
    stmt = (
        select(func.count())
        .select_from(jobs)
        .where(
            jobs.c.queue == queue,
            or_(jobs.c.task_slug == slug, jobs.c.workflow_slug == slug),
            filters.unfinished(),
            jobs.c.meta["scheduled"].as_boolean() == true(),
        )
    )
    return int((await conn.execute(stmt)).scalar_one())


@translated
async def enqueue_tick(
    store: Store,
    *,
    key: str,
    tick: datetime,
    now: datetime,
    rows: Sequence[Row],
    supersede: Sequence[str],
    only_if_idle: tuple[str, str] | None = None,
) -> list[Row] | None:
    """Record ``tick`` as the last tick of ``key`` and insert ``rows``, in one transaction.

    ``only_if_idle=(slug, queue)``: insert only while no scheduled job of ``slug`` on ``queue``
    is unfinished, checked in that transaction under a lock on the pair, so instances that
    propose different ticks (their calls straddling a cron time) cannot both enqueue.

    Returns:
        The stored rows, or ``None`` when ``tick`` (or a later one) was already taken, by
        this instance or another, or a scheduled job is unfinished; then nothing is written.
    """
    async with store.write() as conn:
        if only_if_idle is not None:
            slug, queue = only_if_idle
            await dialects.lock_keys(conn, "schedule", [f"{queue}\0{slug}"])
            if await _count_unfinished(conn, slug, queue):
                return None
        if not await _advance(conn, key, tick, now):
            return None
        return await insert_superseding(conn, rows, supersede, now)


async def _advance(conn: AsyncConnection, key: str, tick: datetime, now: datetime) -> bool:
    """Move ``key`` forward to ``tick`` unless it is already there or beyond.

    Concurrent callers queue on the row lock (PostgreSQL) or the write lock (SQLite), and each
    re-reads the committed ``last_tick`` before deciding, so exactly one of them wins a tick.
    """
    stmt = dialects.upsert(conn, schedules).values(key=key, last_tick=tick, updated_at=now)
    stmt = stmt.on_conflict_do_update(
        index_elements=[schedules.c.key],
        set_={"last_tick": stmt.excluded.last_tick, "updated_at": stmt.excluded.updated_at},
        where=or_(schedules.c.last_tick.is_(None), schedules.c.last_tick < stmt.excluded.last_tick),
    ).returning(schedules.c.key)
    return (await conn.execute(stmt)).first() is not None
