"""The statements ``SqlStore`` sends through SQLAlchemy rather than as driver SQL: lease
renewal and hand-back, cancel, retry, pruning, and the lookups (``get``, ``find``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from asyncjobs.storage import pruning, statements, waits
from asyncjobs.storage.base import Row
from asyncjobs.storage.errors import translated
from asyncjobs.storage.provided import Provided
from asyncjobs.storage.tables import row_values


class Lookups(Provided):
    """Mixed into ``SqlStore``, which provides ``write()`` and ``read()``."""

    @translated
    async def renew(
        self, ids: Sequence[int], token: str, *, live_after: datetime, until: datetime
    ) -> set[int]:
        """Extend live leases of ``token``; return the ids still owned."""
        if not ids:
            return set()
        async with self.write(single=True) as conn:
            stmt = statements.renew(ids, token, live_after=live_after, until=until)
            return {row[0] for row in await conn.execute(stmt)}

    @translated
    async def owned(self, ids: Sequence[int], token: str) -> set[int]:
        """The ``ids`` still leased to ``token``: a cheap primary-key read for the heartbeat."""
        if not ids:
            return set()
        async with self.read() as conn:
            return {row[0] for row in await conn.execute(statements.owned(ids, token))}

    @translated
    async def release(self, ids: Sequence[int], token: str) -> None:
        """Hand jobs back: runnable again at once, no try counted."""
        if ids:
            async with self.write(single=True) as conn:
                await conn.execute(statements.release(ids, token))

    @translated
    async def cancel(
        self, where: Mapping[str, Any] | None, *, queue: str | None, now: datetime, message: str
    ) -> list[int]:
        """Cancel unfinished jobs matching ``where`` (and ``queue``) and their unfinished
        children; return their ids."""
        stmt = statements.cancel(where, queue=queue, now=now, message=message)
        async with self.write() as conn:
            return await waits.cancel_tree(conn, stmt, now=now, message=message)

    @translated
    async def retry(self, job_id: int, *, now: datetime) -> Row | None:
        """Make a failed or cancelled job runnable again, keeping its log; ``None`` otherwise."""
        async with self.write(single=True) as conn:
            row = (await conn.execute(statements.retry(job_id, now=now))).first()
            return None if row is None else row_values(row)

    @translated
    async def prune(self, kind: str, *, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished jobs of ``kind`` older than ``before``; how many."""
        async with self.write(single=True) as conn:
            return int((await conn.execute(pruning.prune(kind, before, limit))).rowcount)

    @translated
    async def get(self, job_id: int) -> Row | None:
        async with self.read() as conn:
            row = (await conn.execute(statements.get(job_id))).first()
            return None if row is None else row_values(row)

    @translated
    async def find(
        self, where: Mapping[str, Any] | None, *, limit: int, order: str, now: datetime
    ) -> list[Row]:
        stmt = statements.find(where, limit=limit, order=order, now=now)
        async with self.read() as conn:
            return [row_values(r) for r in await conn.execute(stmt)]
