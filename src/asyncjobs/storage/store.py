"""The job store: every statement asyncjobs sends, behind one small async interface."""

from __future__ import annotations

import functools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import (
    delete,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asyncjobs.errors import ConnectionLost, StorageError
from asyncjobs.storage import dialects, filters, migrations, notify
from asyncjobs.storage.claims import Claim
from asyncjobs.storage.errors import storage_error
from asyncjobs.storage.hot import MAX_INSERT_ROWS, HotPath
from asyncjobs.storage.tables import (
    SCHEMA_VERSION,
    jobs,
    metadata,
    row_values,
    schema_version,
)

P = ParamSpec("P")
T = TypeVar("T")
Row = dict[str, Any]


def translated(fn: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """Map driver and SQLAlchemy errors to :class:`StorageError` at the boundary
    (:class:`ConnectionLost` when the connection broke)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            kind = ConnectionLost if _lost(exc) else StorageError
            raise storage_error(fn.__name__, exc, kind) from None

    return wrapper


def _lost(exc: BaseException) -> bool:
    """Whether the connection broke (or could not be made), rather than a statement refused."""
    if isinstance(exc, OSError | DisconnectionError):
        return True
    # No statement: it failed connecting (or beginning, or committing).
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or exc.statement is None or isinstance(exc.orig, OSError)
    )


class Store:
    """Owns the engine; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self._hot: HotPath | None = None
        self._write_gate = dialects.write_gate(url)
        self.name = f"asyncjobs-{uuid.uuid4().hex[:12]}"

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def is_open(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the store is not open")
        return self._engine

    @translated
    async def open(self) -> None:
        """Connect and create or check the schema."""
        if self._engine is not None:
            return
        dialects.check_url(self.url)
        engine = dialects.create_engine(self.url, name=self.name)
        try:
            async with engine.connect() as conn:
                await conn.execution_options(**{dialects.WRITE: True})
                async with conn.begin():
                    await dialects.lock_schema(conn)
                    await conn.run_sync(metadata.create_all)
                    await _check_version(conn)
                    await notify.install_trigger(conn)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._hot = HotPath(engine)

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        hot, self._hot = self._hot, None
        if hot is not None:
            await hot.close()
        if engine is not None:
            await engine.dispose()

    @property
    def hot(self) -> HotPath:
        if self._hot is None:
            raise RuntimeError("the store is not open")
        return self._hot

    @asynccontextmanager
    async def write(self, *, single: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction; ``single=True`` for one statement, which is atomic by itself
        and then runs without BEGIN/COMMIT (one round trip on PostgreSQL)."""
        async with self._write_gate, self.engine.connect() as conn:
            if single:
                await dialects.single_statement(conn)
                yield conn
                return
            await conn.execution_options(**{dialects.WRITE: True})
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read statement, outside an explicit transaction."""
        async with self.engine.connect() as conn:
            await dialects.single_statement(conn)
            yield conn

    @translated
    async def insert_jobs(
        self, rows: Sequence[Row], *, supersede: Sequence[str], now: datetime
    ) -> list[Row]:
        """Insert ``rows`` in one transaction, dropping never-started ``supersede`` jobs.

        Of each superseding key only the newest inserted job is kept, so a batch that queues
        one key twice behaves like two ``queue()`` calls in a row.
        """
        if not supersede and len(rows) <= MAX_INSERT_ROWS:
            async with self._write_gate:
                return await self.hot.insert(rows)
        async with self.write(single=len(rows) == 1 and not supersede) as conn:
            return await insert_superseding(conn, rows, supersede, now)

    @translated
    async def claim(self, claim: Claim) -> list[Row]:
        """Lease up to ``claim.limit`` runnable jobs to ``claim.token``, atomically."""
        stmt, params = claim.statement()
        if claim.where:
            async with self.write(single=not claim.keyed) as conn:
                if claim.keyed:
                    await dialects.lock_keyed_claims(conn)
                rows = [row_values(r) for r in await conn.execute(stmt, params)]
        else:
            async with self._write_gate:
                rows = await self.hot.claim(stmt, params, locked=claim.keyed)
        name, desc = filters.sort_key(claim.order)
        rows.sort(key=lambda r: (r[name] is None, r[name], r["id"]), reverse=desc)
        return rows

    @translated
    async def update_owned(
        self, job_id: int, token: str, *, live_after: datetime, values: Mapping[str, Any]
    ) -> bool:
        """Write ``values`` only while ``token`` still holds a lease ending after ``live_after``."""
        async with self._write_gate:
            return await self.hot.update_owned(job_id, token, live_after=live_after, values=values)

    @translated
    async def renew(
        self, ids: Sequence[int], token: str, *, live_after: datetime, until: datetime
    ) -> set[int]:
        """Extend live leases of ``token``; return the ids still owned."""
        if not ids:
            return set()
        async with self.write(single=True) as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id.in_(ids),
                    jobs.c.processing_token == token,
                    jobs.c.processing_until > live_after,
                )
                .values(processing_until=until)
                .returning(jobs.c.id)
            )
            return {row[0] for row in result}

    @translated
    async def owned(self, ids: Sequence[int], token: str) -> set[int]:
        """The ``ids`` still leased to ``token``: a cheap primary-key read for the heartbeat."""
        if not ids:
            return set()
        async with self.read() as conn:
            result = await conn.execute(
                select(jobs.c.id).where(jobs.c.id.in_(ids), jobs.c.processing_token == token)
            )
            return {row[0] for row in result}

    @translated
    async def release(self, ids: Sequence[int], token: str) -> None:
        """Hand jobs back: runnable again at once, no try counted."""
        if not ids:
            return
        async with self.write(single=True) as conn:
            await conn.execute(
                update(jobs)
                .where(jobs.c.id.in_(ids), jobs.c.processing_token == token)
                .values(processing_until=None, processing_token=None)
            )

    @property
    def notifies(self) -> bool:
        """Whether inserts wake listeners in other processes (PostgreSQL)."""
        return self.dialect == "postgresql"

    async def listen(self, wake: notify.Wake) -> None:
        """Call ``wake(queue, due)`` whenever any process queues jobs, until cancelled."""
        await notify.listen(self.engine, wake, ignore=self.name)

    @translated
    async def finish_owned(
        self,
        logs: Mapping[int, list[dict[str, Any]] | None],
        token: str,
        *,
        live_after: datetime,
        now: datetime,
        delete: bool,
    ) -> set[int]:
        """Complete (or delete) the jobs ``token`` still owns; return their ids.

        ``logs`` maps each job to its full step log when that changed since the last write.
        """
        async with self._write_gate:
            if delete:
                return await self.hot.delete_owned(list(logs), token, live_after=live_after)
            return await self.hot.complete_owned(logs, token, live_after=live_after, now=now)

    @translated
    async def cancel(
        self, where: Mapping[str, Any] | None, *, queue: str | None, now: datetime, message: str
    ) -> list[int]:
        """Cancel unfinished jobs matching ``where`` (and ``queue``); return their ids."""
        conditions = [filters.unfinished(), *filters.where_clause(where, now)]
        if queue is not None:
            conditions.append(jobs.c.queue == queue)
        async with self.write(single=True) as conn:
            result = await conn.execute(
                update(jobs)
                .where(*conditions)
                .values(**cancelled_values(now, message))
                .returning(jobs.c.id)
            )
            return [row[0] for row in result]

    @translated
    async def retry(self, job_id: int, *, now: datetime) -> Row | None:
        """Make a failed or cancelled job runnable again, keeping its log; ``None`` otherwise."""
        async with self.write(single=True) as conn:
            result = await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id, jobs.c.has_error == true(), jobs.c.completed_at.is_(None)
                )
                .values(**retried_values(now))
                .returning(*jobs.c)
            )
            row = result.first()
            return None if row is None else row_values(row)

    @translated
    async def get(self, job_id: int) -> Row | None:
        async with self.read() as conn:
            row = (await conn.execute(select(jobs).where(jobs.c.id == job_id))).first()
            return None if row is None else row_values(row)

    @translated
    async def find(
        self, where: Mapping[str, Any] | None, *, limit: int, order: str, now: datetime
    ) -> list[Row]:
        stmt = (
            select(jobs)
            .where(*filters.where_clause(where, now))
            .order_by(*filters.order_by(order))
            .limit(limit)
        )
        async with self.read() as conn:
            return [row_values(r) for r in await conn.execute(stmt)]


def cancelled_error(message: str) -> dict[str, Any]:
    return {"name": "JobCancelled", "message": message, "cancelled": True}


def retried_values(now: datetime) -> dict[str, Any]:
    """What makes a failed or cancelled job runnable again (its log is kept)."""
    return {
        "has_error": False,
        "error": None,
        "wait_until": None,
        "processing_until": None,
        "processing_token": None,
        "updated_at": now,
    }


def cancelled_values(now: datetime, message: str) -> dict[str, Any]:
    return {
        "has_error": True,
        "error": cancelled_error(message),
        "completed_at": None,
        "wait_until": None,
        "processing_until": None,
        "processing_token": None,
        "updated_at": now,
    }


def _supersede(keys: Sequence[str], now: datetime, keep: Sequence[int]) -> Any:
    """Never-started (no try, no log, no live lease), unfinished jobs of these keys."""
    return delete(jobs).where(
        jobs.c.concurrency_key.in_(keys),
        jobs.c.id.not_in(keep),
        filters.unfinished(),
        filters.lease_free(now),
        jobs.c.total_tried == 0,
        jobs.c.log.is_(None),
    )


async def insert_superseding(
    conn: AsyncConnection, rows: Sequence[Row], supersede: Sequence[str], now: datetime
) -> list[Row]:
    """Insert ``rows``, then drop never-started jobs of the ``supersede`` keys.

    Of each key, the newest row just inserted is kept. Each key is locked first, so that
    callers queueing one key at once take turns and the last of them sees every other's job.
    """
    await dialects.lock_keys(conn, "supersede", supersede)
    inserted = await insert_rows(conn, rows)
    if supersede:
        newest = {row["concurrency_key"]: row["id"] for row in inserted}
        keep = [newest[key] for key in supersede if key in newest]
        await conn.execute(_supersede(supersede, now, keep))
    return inserted


async def insert_rows(conn: AsyncConnection, rows: Sequence[Row]) -> list[Row]:
    """Insert in one multi-row statement; rows come back in insertion (id) order.

    ``sort_by_parameter_order`` would make SQLAlchemy send one INSERT per row on SQLite; the
    ids of one multi-row INSERT already follow its VALUES order on both backends.
    """
    if len(rows) == 1:  # one parameter set: a plain execute, not the executemany path
        return [row_values(r) for r in await conn.execute(_INSERT, rows[0])]
    result = await conn.execute(_INSERT, list(rows))
    return sorted((row_values(r) for r in result), key=lambda row: row["id"])


_INSERT = insert(jobs).returning(*jobs.c)


async def _check_version(conn: AsyncConnection) -> None:
    found = (await conn.execute(select(schema_version.c.version))).scalar()
    if found is None:
        await conn.execute(insert(schema_version).values(id=1, version=SCHEMA_VERSION))
    elif found < SCHEMA_VERSION:
        await migrations.upgrade(conn, found)
    elif found > SCHEMA_VERSION:
        raise StorageError(
            f"the database schema is version {found}, newer than this asyncjobs "
            f"(version {SCHEMA_VERSION}); upgrade asyncjobs"
        )
