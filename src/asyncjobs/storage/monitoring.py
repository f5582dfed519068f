"""The read-only statements monitoring sends: is the database there, how deep is each queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import anyio
from sqlalchemy import and_, case, func, literal, select, true
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from asyncjobs.errors import StorageError
from asyncjobs.storage import filters
from asyncjobs.storage.base import Store
from asyncjobs.storage.errors import translated
from asyncjobs.storage.tables import jobs, schema_version

PROBE_TIMEOUT = 5.0  # seconds the database gets to answer a health probe


@dataclass(frozen=True)
class QueueCount:
    """How many unfinished jobs of one queue are in one status, and since when the oldest of
    them is due (its ``wait_until``, else its ``created_at``)."""

    queue: str
    status: str
    count: int
    oldest_due: datetime | None


async def answers(store: Store) -> bool:
    """Whether the database answers a read of the schema table within ``PROBE_TIMEOUT``.

    A SQLite file must also still be where the URL says: connections opened before its
    folder was removed would go on reading the orphaned file.
    """
    if not store.is_open:
        return False
    try:
        with anyio.fail_after(PROBE_TIMEOUT):
            _check_sqlite_file(store.url)
            async with store.read() as conn:
                await conn.execute(select(schema_version.c.version))
    except (SQLAlchemyError, OSError, StorageError, TimeoutError):
        return False
    return True


def _check_sqlite_file(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if not Path(parsed.database).expanduser().is_file():
        raise FileNotFoundError(parsed.database)


def _status(now: datetime) -> object:
    return case(
        (jobs.c.processing_until > now, literal("processing")),
        (and_(jobs.c.wait_until > now, jobs.c.suspended == true()), literal("suspended")),
        (jobs.c.wait_until > now, literal("waiting")),
        else_=literal("queued"),
    )


@translated
async def queue_counts(store: Store, now: datetime) -> list[QueueCount]:
    """Unfinished jobs by queue and status, in one statement over the runnable-jobs index
    (finished jobs, however many the table keeps, are not read)."""
    status = _status(now).label("status")  # type: ignore[attr-defined]
    oldest = func.min(func.coalesce(jobs.c.wait_until, jobs.c.created_at))
    stmt = (
        select(jobs.c.queue, status, func.count().label("count"), oldest.label("oldest"))
        .where(filters.unfinished())
        .group_by(jobs.c.queue, status)
    )
    async with store.read() as conn:
        rows = (await conn.execute(stmt)).all()
    return [QueueCount(row[0], row[1], int(row[2]), row[3]) for row in rows]


def database_kind(store: Store) -> str:
    """Which kind of database ``store`` talks to (``"sqlite"``, ``"postgresql"``)."""
    return str(store.dialect)
