"""PostgreSQL wake-ups across processes: an insert trigger NOTIFYs, a listener hears it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

CHANNEL = "asyncjobs_queued"
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

Wake = Callable[[str, datetime | None], None]


async def install_trigger(conn: AsyncConnection) -> None:
    """Create or refresh the trigger (PostgreSQL only; the schema lock is held)."""
    if conn.dialect.name != "postgresql":
        return
    for statement in _TRIGGER_DDL:
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
