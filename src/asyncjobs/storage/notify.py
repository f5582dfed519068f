"""PostgreSQL wake-ups across processes: an insert trigger NOTIFYs, a listener hears it; and
finished jobs: triggers NOTIFY their ids, heard by a LISTEN held while ``wait()`` waits."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asyncjobs.storage import base

CHANNEL = "asyncjobs_queued"
FINISHED_CHANNEL = "asyncjobs_finished"
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
logger = logging.getLogger("asyncjobs.storage")

# One notification per insert statement and queue, sent by the server when the transaction
# commits: queueing costs no extra round trip, and a listener never sees uncommitted jobs.
_TRIGGER_DDL = (
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_notify_queued() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{CHANNEL}', q.queue || ' ' ||
                          coalesce(extract(epoch FROM q.due)::text, '') || ' ' ||
                          current_setting('application_name'))
        FROM (SELECT queue, max(wait_until) AS due FROM new_rows GROUP BY queue) AS q;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS asyncjobs_queued ON asyncjobs_jobs",
    """
    CREATE TRIGGER asyncjobs_queued AFTER INSERT ON asyncjobs_jobs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
    EXECUTE FUNCTION asyncjobs_notify_queued()
    """,
)

# A job that completes, fails for good or is cancelled NOTIFYs its id at commit; the trigger
# fires only for updates that set those columns and only for the rows that just finished.
# Deleted jobs (completed ones with ``delete_job_on_complete``, retention) are announced per
# statement, their ids in chunks that stay under the payload limit.
_FINISHED_DDL = (
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_notify_finished() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{FINISHED_CHANNEL}', NEW.id::text);
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS asyncjobs_finished ON asyncjobs_jobs",
    """
    CREATE TRIGGER asyncjobs_finished AFTER UPDATE OF completed_at, has_error ON asyncjobs_jobs
    FOR EACH ROW WHEN ((NEW.completed_at IS NOT NULL AND OLD.completed_at IS NULL)
                       OR (NEW.has_error AND NOT OLD.has_error))
    EXECUTE FUNCTION asyncjobs_notify_finished()
    """,
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_notify_deleted() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('{FINISHED_CHANNEL}', string_agg(d.id::text, ' '))
        FROM (SELECT id, (row_number() OVER ()) / 500 AS part FROM old_rows) AS d
        GROUP BY d.part;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS asyncjobs_deleted ON asyncjobs_jobs",
    """
    CREATE TRIGGER asyncjobs_deleted AFTER DELETE ON asyncjobs_jobs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT
    EXECUTE FUNCTION asyncjobs_notify_deleted()
    """,
)

Wake = Callable[[str, datetime | None], None]
FinishedBus = base.FinishedBus


async def install_trigger(conn: AsyncConnection) -> None:
    """Create or refresh the trigger (PostgreSQL only; the schema lock is held)."""
    if conn.dialect.name != "postgresql":
        return
    for statement in (*_TRIGGER_DDL, *_FINISHED_DDL):
        await conn.execute(text(statement))


def parse(payload: str) -> tuple[str, datetime | None, str]:
    """``"queue epoch origin"`` → the queue, the latest ``wait_until`` of the new jobs (if
    any), and the ``application_name`` of the inserting connection."""
    rest, _, origin = payload.rpartition(" ")
    queue, _, due = rest.rpartition(" ")
    return queue, datetime.fromtimestamp(float(due), UTC) if due else None, origin


async def listen(engine: AsyncEngine, wake: Wake, *, ignore: str = "") -> None:
    """Call ``wake(queue, due)`` for every job inserted by any process, until cancelled.

    Jobs queued through connections named ``ignore`` are skipped. A dropped connection is
    re-established; the cron ticks cover what is missed meanwhile.
    Nothing is sent while idle: the connection only waits for notifications.
    """
    attempt = 0
    while True:
        try:
            await _listen_once(engine, wake, ignore)
            attempt = 0
        except Exception:
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            logger.warning(
                "Job notification listener lost; retrying in %.1f s", delay, exc_info=True
            )
            attempt += 1
            await anyio.sleep(delay)


async def _listen_once(engine: AsyncEngine, wake: Wake, ignore: str) -> None:
    lost = anyio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        queue, due, origin = parse(payload)
        if origin != ignore:  # this instance already woke itself when it queued
            wake(queue, due)

    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        raw.add_termination_listener(lambda _conn: lost.set())
        await raw.add_listener(CHANNEL, on_notify)
        try:
            await lost.wait()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(2):
                if raw.is_closed():
                    await conn.invalidate()  # never hand a dead connection back to the pool
                else:
                    await raw.remove_listener(CHANNEL, on_notify)
    raise ConnectionError("the notification connection was closed")


class FinishedListener:
    """One LISTEN on the finished channel, opened by the first waiter and closed by the last.

    Notifications are dispatched by the driver as they arrive (no task of its own). A lost
    connection wakes every waiter, whose next look opens a fresh one.
    """

    def __init__(self) -> None:
        self._lock = anyio.Lock()
        self._users = 0
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._on_notify: Any = None

    @asynccontextmanager
    async def watching(self, engine: AsyncEngine, bus: FinishedBus) -> AsyncIterator[None]:
        async with self._lock:
            if self._raw is None or self._raw.is_closed():
                await self._close()
                await self._open(engine, bus)
            self._users += 1
        try:
            yield
        finally:
            with anyio.CancelScope(shield=True):
                async with self._lock:
                    self._users -= 1
                    if self._users == 0:
                        await self._close()

    async def _open(self, engine: AsyncEngine, bus: FinishedBus) -> None:
        def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
            bus.publish(int(job_id) for job_id in payload.split())

        conn = await engine.connect()
        try:
            raw = (await conn.get_raw_connection()).driver_connection
            assert raw is not None
            raw.add_termination_listener(lambda _conn: bus.publish_all())
            await raw.add_listener(FINISHED_CHANNEL, on_notify)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await conn.invalidate()
                await conn.close()
            raise
        self._conn, self._raw, self._on_notify = conn, raw, on_notify

    async def _close(self) -> None:
        conn, raw, self._conn, self._raw = self._conn, self._raw, None, None
        if conn is None:
            return
        with anyio.move_on_after(2):
            if raw.is_closed():
                await conn.invalidate()  # never hand a dead connection back to the pool
            else:
                await raw.remove_listener(FINISHED_CHANNEL, self._on_notify)
        await conn.close()
