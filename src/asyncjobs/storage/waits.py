"""Durable waits in storage: signals stored and read, a job suspended (and its child queued)
in one fenced transaction, and cancels that reach children (the triggers: ``triggers``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, delete, insert, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage import filters, inserts
from asyncjobs.storage.base import Row, cancelled_values
from asyncjobs.storage.codec import Compiled
from asyncjobs.storage.errors import translated
from asyncjobs.storage.inserts import Fetch
from asyncjobs.storage.notify import CHANNEL
from asyncjobs.storage.provided import Provided
from asyncjobs.storage.tables import jobs, signals

CASCADE_CHUNK = 500  # parent ids per statement when a cancel reaches children
Values = Callable[[int | None], Mapping[str, Any]]  # a suspension's columns, given its child
Check = tuple[str, frozenset[int]]  # (topic, signal ids already consumed)

# Woken: runnable at once if suspended (a sleeping job keeps its time); either way no longer
# suspended. Set by id alone, so the row is locked even when it is not suspended yet: a
# suspension committing meanwhile either waits for this write and then sees the signal, or
# commits first and is woken by it.
_WAKE = {
    "wait_until": case((jobs.c.suspended == true(), None), else_=jobs.c.wait_until),
    "suspended": None,
}


_WAKE_BY_ID = update(jobs).where(jobs.c.id == bindparam("job_id")).values(**_WAKE)
_SIGNAL_IDS = select(signals.c.id).where(
    signals.c.job_id == bindparam("job_id"), signals.c.topic == bindparam("topic")
)


class _Lost(Exception):
    """The job's lease was lost: the suspension's transaction is rolled back."""


class WaitState(Provided):
    """The durable-wait statements of ``SqlStore``; each is one transaction."""

    def _update_sql(self, names: tuple[str, ...]) -> str:
        raise NotImplementedError

    def _compiled(self, statement: Any) -> Compiled:
        raise NotImplementedError

    @translated
    async def signal(
        self, job_id: int, topic: str, payload: Any, *, now: datetime
    ) -> tuple[str, datetime | None] | None:
        """Store a signal for an unfinished job and wake it if it is suspended; return its
        queue and ``wait_until`` after, or ``None`` when the job is missing or finished."""
        async with self.write() as conn:
            woken = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, filters.unfinished())
                .values(**_WAKE, updated_at=now)
                .returning(jobs.c.queue, jobs.c.wait_until)
            )
            row = woken.first()
            if row is None:
                return None
            values = {"job_id": job_id, "topic": topic, "payload": payload, "created_at": now}
            await conn.execute(insert(signals).values(**values))
            if row.wait_until is None:
                await _notify(conn, row.queue)
            return row.queue, row.wait_until

    @translated
    async def signals(self, job_id: int, topic: str) -> list[tuple[int, Any]]:
        """``(id, payload)`` of every signal sent to the job on ``topic``, oldest first."""
        stmt = (
            select(signals.c.id, signals.c.payload)
            .where(signals.c.job_id == job_id, signals.c.topic == topic)
            .order_by(signals.c.id)
        )
        async with self.read() as conn:
            return [(row.id, row.payload) for row in await conn.execute(stmt)]

    @translated
    async def suspend(
        self,
        job_id: int,
        token: str,
        *,
        live_after: datetime,
        values: Values,
        check: Check | None = None,
        child: Row | None = None,
    ) -> tuple[bool, int | None] | None:
        """Write a suspension while ``token`` holds the job, inserting ``child`` first (its
        id goes to ``values``); ``None`` when the lease was lost (nothing is written). One
        transaction of driver SQL on a held connection, as the other per-attempt writes.

        Returns whether the job is still suspended (``False``: a signal on ``check``'s
        topic that is not consumed yet had arrived, so it is runnable at once) and the
        child's id.
        """
        sql = self.inserts  # read before the transaction: the store may close meanwhile
        try:
            async with self.held_transaction() as fetch:
                child_id = None
                if child is not None:
                    stored = await inserts.insert(fetch, sql, [child], (), child["created_at"])
                    child_id = stored[0]["id"]
                columns = values(child_id)
                names = tuple(columns)
                args = [self.codec.encode(name, columns[name]) for name in names]
                args += [job_id, token, self.codec.time(live_after)]
                if not await fetch(self._update_sql(names), args):
                    raise _Lost
                if check is not None and await self._unconsumed(fetch, job_id, check):
                    woken = self._compiled(_WAKE_BY_ID)
                    await fetch(woken.sql, woken.args({"job_id": job_id}))
                    return False, child_id
                return True, child_id
        except _Lost:
            return None

    async def _unconsumed(self, fetch: Fetch, job_id: int, check: Check) -> bool:
        topic, consumed = check
        found = self._compiled(_SIGNAL_IDS)
        rows = await fetch(found.sql, found.args({"job_id": job_id, "topic": topic}))
        return any(row[0] not in consumed for row in rows)

    @translated
    async def delete_finished(self, ids: Sequence[int]) -> None:
        """Delete completed jobs (children, kept until their outcome reached the parent)."""
        if ids:
            stmt = delete(jobs).where(jobs.c.id.in_(ids), jobs.c.completed_at.is_not(None))
            async with self.write(single=True) as conn:
                await conn.execute(stmt)


async def _notify(conn: AsyncConnection, queue: str) -> None:
    """Wake every process's autoRun for ``queue`` (PostgreSQL; the origin left empty, so the
    sender's own listener hears it too)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(
            text("SELECT pg_notify(:channel, :payload)"),
            {"channel": CHANNEL, "payload": f"{queue}  "},
        )


async def cancel_tree(
    conn: AsyncConnection, stmt: Any, *, now: datetime, message: str
) -> list[int]:
    """Run the cancel ``stmt``, then cancel the unfinished children of every job it
    cancelled, and theirs, in the same transaction; return every id cancelled."""
    cancelled = [row[0] for row in await conn.execute(stmt)]
    frontier = cancelled
    while frontier:
        found: list[int] = []
        for start in range(0, len(frontier), CASCADE_CHUNK):
            parents = frontier[start : start + CASCADE_CHUNK]
            children = (
                update(jobs)
                .where(jobs.c.parent_id.in_(parents), filters.unfinished())
                .values(**cancelled_values(now, message))
                .returning(jobs.c.id)
            )
            found += [row[0] for row in await conn.execute(children)]
        cancelled += found
        frontier = found
    return cancelled
