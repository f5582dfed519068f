"""The statements both backends send through SQLAlchemy: leases renewed and handed back,
lookups, cancel and retry, inserts inside a schedule's transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters
from asyncjobs.storage.base import Row, cancelled_values
from asyncjobs.storage.tables import jobs, row_values


def renew(ids: Sequence[int], token: str, *, live_after: datetime, until: datetime) -> Any:
    return (
        update(jobs)
        .where(
            jobs.c.id.in_(ids),
            jobs.c.processing_token == token,
            jobs.c.processing_until > live_after,
        )
        .values(processing_until=until)
        .returning(jobs.c.id)
    )


def owned(ids: Sequence[int], token: str) -> Any:
    return select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.processing_token == token)


def release(ids: Sequence[int], token: str) -> Any:
    return (
        update(jobs)
        .where(jobs.c.id.in_(ids), jobs.c.processing_token == token)
        .values(processing_until=None, processing_token=None)
    )


def cancel(
    where: Mapping[str, Any] | None, *, queue: str | None, now: datetime, message: str
) -> Any:
    conditions = [filters.unfinished(), *filters.where_clause(where, now)]
    if queue is not None:
        conditions.append(jobs.c.queue == queue)
    return (
        update(jobs)
        .where(*conditions)
        .values(**cancelled_values(now, message))
        .returning(jobs.c.id)
    )


def retry(job_id: int, *, now: datetime) -> Any:
    return (
        update(jobs)
        .where(jobs.c.id == job_id, jobs.c.has_error == true(), jobs.c.completed_at.is_(None))
        .values(**retried_values(now))
        .returning(*jobs.c)
    )


def retried_values(now: datetime) -> dict[str, Any]:
    """What makes a failed or cancelled job runnable again (its log is kept)."""
    return {
        "has_error": False,
        "error": None,
        "wait_until": None,
        "processing_until": None,
        "processing_token": None,
        "updated_at": now,
    }


def get(job_id: int) -> Any:
    return select(jobs).where(jobs.c.id == job_id)


def find(where: Mapping[str, Any] | None, *, limit: int, order: str, now: datetime) -> Any:
    return (
        select(jobs)
        .where(*filters.where_clause(where, now))
        .order_by(*filters.order_by(order))
        .limit(limit)
    )


def supersede(keys: Sequence[str], now: datetime, keep: Sequence[int]) -> Any:
    """Never-started (no try, no log, no live lease), unfinished jobs of these keys."""
    return delete(jobs).where(
        jobs.c.concurrency_key.in_(keys),
        jobs.c.id.not_in(keep),
        filters.unfinished(),
        filters.lease_free(now),
        jobs.c.total_tried == 0,
        jobs.c.log.is_(None),
    )


async def insert_rows(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """Insert in one multi-row statement; rows come back in insertion (id) order.

    ``sort_by_parameter_order`` would make SQLAlchemy send one INSERT per row on SQLite; the
    ids of one multi-row INSERT already follow its VALUES order on both backends.
    """
    if len(rows) == 1:  # one parameter set: a plain execute, not the executemany path
        return [row_values(r) for r in await conn.execute(_INSERT, rows[0])]
    result = await conn.execute(_INSERT, list(rows))
    return sorted((row_values(r) for r in result), key=lambda row: row["id"])


_INSERT = insert(jobs).returning(*jobs.c)
