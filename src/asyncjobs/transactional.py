"""Queueing inside the caller's own transaction: validated as ``queue()`` validates, written
through the caller's connection, and announced only once that transaction commits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, Protocol

from asyncjobs.definitions import Access, check_access
from asyncjobs.models import Job, make_job
from asyncjobs.queueing import check_items, check_items_access, prepare_rows
from asyncjobs.registry import Registry
from asyncjobs.storage import Store, driver_sql, external
from asyncjobs.wake import WakeBus


class QueueHost(Protocol):
    """What queueing in a caller's transaction needs of ``Jobs``."""

    registry: Registry
    access: Access | None
    database_url: str
    clock: Callable[[], datetime]

    @property
    def store(self) -> Store: ...

    @property
    def wake(self) -> WakeBus: ...

    async def _ready(self) -> None: ...


@dataclass(frozen=True)
class Prepared:
    """Validated rows to insert, the superseding keys, and the time they were made at."""

    rows: list[dict[str, Any]]
    supersede: list[str]
    now: datetime


async def queue_through(
    connection: Any, host: QueueHost, items: Sequence[Mapping[str, Any]]
) -> list[Job]:
    """Insert ``items`` (checked for access already) through ``connection`` (an
    ``AsyncConnection`` or ``AsyncSession``) inside its transaction; the jobs are announced
    after its commit, never after a rollback."""
    external.check_caller(connection, host.database_url)
    prepared = await validated(host, items)
    stored = await external.insert_through(
        host.store, connection, prepared.rows, prepared.supersede, prepared.now
    )
    created = [make_job(row, prepared.now) for row in stored]
    external.after_commit(connection, partial(host.wake.publish_jobs, created))
    return created


async def prepare(
    host: QueueHost,
    items: Sequence[Mapping[str, Any]],
    override_access: bool = True,
    request: Any = None,
    *,
    open_store: bool = True,
) -> Prepared:
    """Check access and validate every item as ``queue()`` does.

    ``open_store``: open asyncjobs' database first (creating its tables). Not while the
    caller's transaction may hold SQLite's write lock, which opening would wait for.
    """
    items = check_items(items)
    await check_access(host.access, "queue", override_access, request)
    await check_items_access(items, host.access, request)
    if open_store:
        await host._ready()
    return await validated(host, items)


async def validated(host: QueueHost, items: Sequence[Mapping[str, Any]]) -> Prepared:
    """Rows for ``items``; the database is not touched (the caller's transaction may hold
    SQLite's write lock, and opening asyncjobs' database would wait for it)."""
    now = host.clock()
    rows, supersede = await prepare_rows(host.registry, items, now)
    return Prepared(rows, supersede, now)


def insert_with_cursor(cursor: Any, vendor: str, prepared: Prepared) -> list[Job]:
    """Insert ``prepared`` with a caller's DB-API ``cursor`` (Django's) in its transaction."""
    stored = driver_sql.insert_with_cursor(
        cursor, vendor, prepared.rows, prepared.supersede, prepared.now
    )
    return [make_job(row, prepared.now) for row in stored]


def announce(host: QueueHost, created: Sequence[Job]) -> None:
    """Tell ``host``'s queue listeners (autoRun) of jobs another connection committed."""
    host.wake.publish_jobs(created)
