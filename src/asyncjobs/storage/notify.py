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

# Finished jobs are announced only to waiters, who register each waited id in a table first
# (so a completion of nobody's job pays one lock-free probe of an empty table, not a NOTIFY,
# whose commit lock serialises every writer). Completions and deletions on completion NOTIFY
# from their own statement (see ``finished_notify``); failures and cancellations, from a
# trigger that fires only for updates that set ``has_error``.
WAITS = "asyncjobs_waits"
_FINISHED_DDL = (
    f"CREATE UNLOGGED TABLE IF NOT EXISTS {WAITS} (job_id BIGINT NOT NULL)",
    f"CREATE INDEX IF NOT EXISTS ix_{WAITS}_job_id ON {WAITS} (job_id)",
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_notify_failed() RETURNS trigger AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM {WAITS} WHERE job_id = NEW.id) THEN
            PERFORM pg_notify('{FINISHED_CHANNEL}', NEW.id::text);
        END IF;
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS asyncjobs_failed ON asyncjobs_jobs",
    """
    CREATE TRIGGER asyncjobs_failed AFTER UPDATE OF has_error ON asyncjobs_jobs
    FOR EACH ROW WHEN (NEW.has_error AND NOT OLD.has_error)
    EXECUTE FUNCTION asyncjobs_notify_failed()
    """,
)
# A waiter registers under this lock: it waits for every writer that already looked at the
# table to commit (the waiter's next read sees their outcome), and a writer starting meanwhile
# takes its snapshot only after the registration committed (it sees it and notifies).
_REGISTER = (f"LOCK TABLE {WAITS} IN ACCESS EXCLUSIVE MODE", f"INSERT INTO {WAITS} VALUES ($1)")
_UNREGISTER = (
    f"DELETE FROM {WAITS} WHERE ctid = (SELECT ctid FROM {WAITS} WHERE job_id = $1 LIMIT 1)"
)


def finished_notify(statement: str) -> str:
    """``statement`` (``... RETURNING id``) that also NOTIFYs the ids someone waits for."""
    return (
        f"WITH done AS ({statement}), said AS (SELECT pg_notify('{FINISHED_CHANNEL}', "
        f"string_agg(done.id::text, ' ')) FROM done JOIN {WAITS} w ON w.job_id = done.id "
        "HAVING count(*) > 0) SELECT done.id FROM done LEFT JOIN said ON true"
    )


Wake = Callable[[str, datetime | None], None]
ListenerState = base.ListenerState
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


async def listen(
    engine: AsyncEngine, wake: Wake, *, ignore: str = "", state: ListenerState | None = None
) -> None:
    """Call ``wake(queue, due)`` for every job inserted by any process, until cancelled.

    Jobs queued through connections named ``ignore`` are skipped. A dropped connection is
    re-established; the cron ticks cover what is missed meanwhile. ``state`` hears
    ``"listening"`` each time the LISTEN is in place and ``"reconnecting"`` when it is lost.
    Nothing is sent while idle: the connection only waits for notifications.
    """
    attempt = 0
    told = state or (lambda _state: None)
    while True:
        try:
            await _listen_once(engine, wake, ignore, told)
            attempt = 0
        except Exception:
            told("reconnecting")
            delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
            logger.warning(
                "Job notification listener lost; retrying in %.1f s", delay, exc_info=True
            )
            attempt += 1
            await anyio.sleep(delay)


async def _listen_once(engine: AsyncEngine, wake: Wake, ignore: str, state: ListenerState) -> None:
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
        state("listening")
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
        self.registering = anyio.Lock()
        self._conn: AsyncConnection | None = None
        self._raw: Any = None
        self._on_notify: Any = None

    @asynccontextmanager
    async def watching(
        self, engine: AsyncEngine, bus: FinishedBus, job_id: int
    ) -> AsyncIterator[None]:
        """LISTEN (shared), then register ``job_id`` as waited for, until the block ends."""
        async with self._listening(engine, bus):
            await _registered(engine, job_id, _REGISTER)
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                    await _registered(engine, job_id, (_UNREGISTER,))

    @asynccontextmanager
    async def _listening(self, engine: AsyncEngine, bus: FinishedBus) -> AsyncIterator[None]:
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


async def _registered(engine: AsyncEngine, job_id: int, statements: tuple[str, ...]) -> None:
    async with engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        async with raw.transaction():
            for statement in statements:
                await raw.execute(statement, *([job_id] if "$1" in statement else []))
