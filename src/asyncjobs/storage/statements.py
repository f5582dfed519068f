"""The statements both backends send through SQLAlchemy: leases renewed and handed back,
lookups, cancel and retry."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import case, exists, false, null, select, true, update

from asyncjobs.storage import filters
from asyncjobs.storage.base import cancelled_values
from asyncjobs.storage.tables import jobs


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


def _key_unless_taken() -> Any:
    """A retried job keeps its idempotency key unless another unfinished job took it since."""
    holder = jobs.alias("holder")
    taken = exists().where(
        holder.c.idempotency_key == jobs.c.idempotency_key,
        holder.c.completed_at.is_(None),
        holder.c.has_error == false(),
    )
    return case((taken, null()), else_=jobs.c.idempotency_key)


def retried_values(now: datetime) -> dict[str, Any]:
    """What makes a failed or cancelled job runnable again (its log is kept, and its
    idempotency key unless another unfinished job took it since)."""
    return {
        "has_error": False,
        "error": None,
        "wait_until": None,
        "processing_until": None,
        "processing_token": None,
        "updated_at": now,
        "idempotency_key": _key_unless_taken(),
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
