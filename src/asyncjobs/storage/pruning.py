"""The DELETE that prunes one batch of finished jobs older than a cutoff."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, delete, select

from asyncjobs.storage.tables import CANCELLED, COMPLETED, FAILED, jobs

# Each kind: the conditions of its partial index, and the column its age is counted from.
KINDS: dict[str, tuple[tuple[ColumnElement[bool], ...], Any]] = {
    "completed": ((COMPLETED,), jobs.c.completed_at),
    "failed": (FAILED, jobs.c.updated_at),
    "cancelled": (CANCELLED, jobs.c.updated_at),
}


def prune(kind: str, before: datetime, limit: int) -> Any:
    """Delete up to ``limit`` finished jobs of ``kind`` whose age column is before ``before``.

    The conditions are repeated on the DELETE itself, so a row changed meanwhile (a failed
    job retried) is checked again against its new version and kept.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind of finished job {kind!r}; use one of {', '.join(KINDS)}")
    conditions, column = KINDS[kind]
    due = (*conditions, column < before)
    batch = select(jobs.c.id).where(*due).order_by(column).limit(limit)
    return delete(jobs).where(jobs.c.id.in_(batch), *due)
