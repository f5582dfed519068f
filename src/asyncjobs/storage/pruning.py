"""The DELETE that prunes one batch of finished jobs older than a cutoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from asyncjobs.storage.tables import CANCELLED, FAILED, SUCCEEDED, jobs

# Each kind: the conditions of its status (implying its pruning index's), the column its age
# is counted from, and the order the index reads it in.
KINDS: dict[str, tuple[tuple[ColumnElement[bool], ...], Any, Any]] = {
    "completed": (SUCCEEDED, jobs.c.completed_at, jobs.c.completed_at),
    "failed": (FAILED, jobs.c.updated_at, jobs.c.id),
    "cancelled": (CANCELLED, jobs.c.updated_at, jobs.c.id),
}


def prune(kind: str, before: datetime, limit: int) -> Any:
    """Delete up to ``limit`` finished jobs of ``kind`` whose age column is before ``before``.

    The batch is locked as it is chosen (skipping locked rows): PostgreSQL then checks a row
    changed meanwhile (a failed job retried) against its new version, and keeps it. The
    DELETE itself only looks rows up by id.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of finished job {kind!r}; use one of {', '.join(KINDS)}")
    conditions, column, order = KINDS[kind]
    batch = (
        select(jobs.c.id)
        .where(*conditions, column < before)
        .order_by(order)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return delete(jobs).where(jobs.c.id.in_(batch))
