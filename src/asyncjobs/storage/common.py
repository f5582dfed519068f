"""What both backends share: the engine's life, the schema, and every statement written once
in SQLAlchemy; the backends add their engine settings and driver SQL (inserts included)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from datetime import datetime
from typing import Any, NamedTuple

import anyio
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asyncjobs.storage import filters, inserts, migrations, triggers, waits
from asyncjobs.storage.base import Claim, FinishedBus, ListenerState, Log, Logs, Row, Wake
from asyncjobs.storage.claims import claim_statement
from asyncjobs.storage.codec import Codec, Compiled
from asyncjobs.storage.errors import translated
from asyncjobs.storage.held import Driver, HeldConnections, unbroken
from asyncjobs.storage.inserts import Fetch, InsertSql
from asyncjobs.storage.lookups import Lookups
from asyncjobs.storage.schedules import ScheduleState
from asyncjobs.storage.tables import metadata

FINISHED_POLL = 1.0  # seconds: how soon ``wait()`` sees a finish by another SQLite process


class _Open(NamedTuple):
    engine: AsyncEngine
    held: HeldConnections
    codec: Codec
    inserts: InsertSql


class SqlStore(ScheduleState, waits.WaitState, Lookups):
    """Owns the engine and the held connections; every method is one short transaction."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._open: _Open | None = None
        self._statements: dict[Any, Compiled] = {}
        self._write_gate = self._new_write_gate()
        self.name = f"asyncjobs-{uuid.uuid4().hex[:12]}"

    def __repr__(self) -> str:
        return f"Store({make_url(self.url).render_as_string(hide_password=True)!r})"

    @property
    def dialect(self) -> str:
        return make_url(self.url).get_backend_name()

    @property
    def is_open(self) -> bool:
        return self._open is not None

    @property
    def engine(self) -> AsyncEngine:
        return self._opened().engine

    @property
    def held(self) -> HeldConnections:
        return self._opened().held

    @property
    def codec(self) -> Codec:
        return self._opened().codec

    @property
    def inserts(self) -> InsertSql:
        return self._opened().inserts

    def _opened(self) -> _Open:
        if self._open is None:
            raise RuntimeError("the store is not open")
        return self._open

    @property
    def notifies(self) -> bool:
        """Whether inserts wake listeners in other processes."""
        return False

    async def listen(self, wake: Wake, state: ListenerState | None = None) -> None:
        """Call ``wake(queue, due)`` whenever another process queues jobs (no-one can here)."""

    @property
    def finished_poll(self) -> float | None:
        """Without notifications, a waiter looks again this often (seconds)."""
        return FINISHED_POLL

    def watch_finished(self, bus: FinishedBus, job_id: int) -> AbstractAsyncContextManager[None]:
        """Nothing is heard from other processes here: ``finished_poll`` covers them."""
        return nullcontext()

    @translated
    async def open(self) -> None:
        """Connect and create or check the schema."""
        if self._open is not None:
            return
        engine = self._create_engine()
        try:
            async with engine.connect() as conn:
                await self._prepare(conn)
                await self._writing(conn)
                async with conn.begin():
                    await self._lock_schema(conn)
                    await conn.run_sync(metadata.create_all)
                    await migrations.check_version(conn)
                    await self._install(conn)
                    await triggers.install(conn)
        except BaseException:
            # Shielded: an open cancelled half-way must still let go of its connection, which
            # may hold SQLite's write lock (a schema transaction) that others would wait on.
            with anyio.CancelScope(shield=True):
                await engine.dispose()
            raise
        held, codec = HeldConnections(engine, self._driver()), Codec(engine.dialect)
        self._open = _Open(engine, held, codec, self.insert_sql(codec))

    async def close(self) -> None:
        opened, self._open = self._open, None
        if opened is not None:
            await opened.held.close()
            await opened.engine.dispose()

    @asynccontextmanager
    async def write(self, *, single: bool = False) -> AsyncIterator[AsyncConnection]:
        """A write transaction; ``single=True`` for one statement, which is atomic by itself
        and then runs without BEGIN/COMMIT (one round trip on PostgreSQL)."""
        async with self._write_gate, self.engine.connect() as conn:
            if single:
                await self._single(conn)
                yield conn
                return
            await self._writing(conn)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """One read statement, outside an explicit transaction."""
        async with self.engine.connect() as conn:
            await self._single(conn)
            yield conn

    # -- the statements every batch sends, as driver calls on held connections ------------

    @translated
    async def insert_jobs(
        self, rows: Sequence[Row], *, supersede: Sequence[str], now: datetime
    ) -> list[Row]:
        """Insert ``rows`` in one transaction (see ``inserts.insert``): one stored row per row,
        in order (the holder of a taken idempotency key in its row's place)."""
        if not rows:
            return []
        sql = self.inserts  # the rows are read even if the store closes meanwhile
        async with self.held_transaction(single=sql.single(rows, supersede)) as fetch:
            return await inserts.insert(fetch, sql, rows, supersede, now)

    @asynccontextmanager
    async def held_transaction(self, *, single: bool = False) -> AsyncIterator[Fetch]:
        """One write transaction on a held connection, as a ``fetch(sql, args)`` of driver
        SQL; ``single``: one statement, atomic by itself, sent without BEGIN/COMMIT."""
        async with self._write_gate, self.held.connection() as driver:

            async def fetch(sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
                return await unbroken(self.held.driver.fetch(driver, sql, args))

            if single:
                yield fetch
                return
            await unbroken(driver.execute(self._begin))
            try:
                yield fetch
            except BaseException:
                with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
                    await driver.execute("ROLLBACK")
                raise
            await unbroken(driver.execute("COMMIT"))

    @translated
    async def claim(self, claim: Claim) -> list[Row]:
        """Lease up to ``claim.limit`` runnable jobs to ``claim.token``, atomically.

        The lease may commit without waiting for its WAL flush (PostgreSQL): losing a claim
        to a server crash loses no job and runs nothing twice that a durable claim would not,
        since the job is unleased again after recovery and every later write of the worker is
        fenced by the lost token. A durable write that follows flushes the WAL up to it.
        """
        stmt, params = claim_statement(claim)
        codec = self.codec  # the rows are read even if the store closes meanwhile
        # A ``where`` filter makes a statement of its own, compiled for this claim alone.
        compiled = Compiled(stmt, codec.dialect) if claim.where else self._compiled(stmt)
        async with self._write_gate:
            fetched = await self._fetch_claim(compiled.sql, compiled.args(params), claim.keyed)
        rows = [codec.decode_row(r) for r in fetched]
        name, desc = filters.sort_key(claim.order)
        rows.sort(key=lambda r: (r[name] is None, r[name], r["id"]), reverse=desc)
        rows.sort(key=lambda r: -r["priority"])  # stable: the order above within a priority
        return rows

    @translated
    async def update_owned(
        self, job_id: int, token: str, *, live_after: datetime, values: Mapping[str, Any]
    ) -> bool:
        """Write ``values`` only while ``token`` still holds a lease ending after ``live_after``."""
        names = tuple(values)
        sql = self._update_sql(names)
        args = [self.codec.encode(name, values[name]) for name in names]
        args += [job_id, token, self.codec.time(live_after)]
        async with self._write_gate:
            return bool(await self.held.fetch(sql, args, fenced=True))

    @translated
    async def finish_owned(
        self,
        logs: Logs,
        token: str | Mapping[int, str],
        *,
        live_after: datetime,
        now: datetime,
        delete: bool,
        outputs: Mapping[int, Any] | None = None,
    ) -> set[int]:
        """Complete (or delete) the jobs ``token`` still owns; return their ids.

        ``logs`` maps each job to its full step log when that changed since the last write;
        ``outputs`` each job to its result (``{}`` when missing), set in the same statement.
        ``token``: the lease token of every job, or each job's own (jobs of several claims).
        """
        tokens = dict.fromkeys(logs, token) if isinstance(token, str) else token
        owned = [self._ids(logs), self._tokens(tokens), self.codec.time(live_after)]
        if delete:
            sql, args = self._delete_sql, owned
        else:
            changed = {job_id: log for job_id, log in logs.items() if log is not None}
            results = {job_id: (outputs or {}).get(job_id, {}) for job_id in logs}
            sql = self._complete_sql
            args = [*owned, self.codec.time(now), *self._new_logs(changed)]
            args = self._complete_args(args + self._outputs(results))
        async with self._write_gate:
            return {r[0] for r in await self.held.fetch(sql, args, fenced=True)}

    @translated
    async def write_logs(
        self,
        logs: Mapping[int, Log],
        tokens: Mapping[int, str],
        *,
        live_after: datetime,
        now: datetime,
    ) -> set[int]:
        """Set the step log of each job whose own token still holds a live lease, in one
        statement; return the ids written."""
        ids = self._ids(logs)
        args = self._logs_args(
            ids,
            self._tokens({job_id: tokens[job_id] for job_id in logs}),
            self.codec.time(live_after),
            self.codec.time(now),
            list(logs.values()),
        )
        async with self._write_gate:
            return {r[0] for r in await self.held.fetch(self._logs_sql, args, fenced=True)}

    def _complete_args(self, args: list[Any]) -> list[Any]:
        """``_complete_sql``'s arguments: ids, token, live_after, now, logs, outputs."""
        return args

    def _compiled(self, statement: Any) -> Compiled:
        # Statements are the claims' prebuilt templates, so this holds a few entries.
        compiled = self._statements.get(statement)
        if compiled is None:
            compiled = self._statements[statement] = Compiled(statement, self.engine.dialect)
        return compiled

    async def insert_through(
        self, conn: AsyncConnection, rows: Sequence[Row], supersede: Sequence[str], now: datetime
    ) -> list[Row]:
        """Insert ``rows`` through ``conn`` (a caller's open transaction), as ``insert_jobs``."""

        async def fetch(sql: str, args: Sequence[Any]) -> Sequence[Sequence[Any]]:
            result = await conn.exec_driver_sql(sql, tuple(args))
            return result.all() if result.returns_rows else []

        sql = self.insert_sql(Codec(conn.dialect))
        return await inserts.insert(fetch, sql, rows, supersede, now)

    # -- what each backend provides -------------------------------------------------------

    def _new_write_gate(self) -> AbstractAsyncContextManager[Any]:
        return nullcontext()

    def _create_engine(self) -> AsyncEngine:
        """The engine; an unsupported URL is a ``ValueError`` here."""
        url = make_url(self.url).render_as_string(hide_password=True)
        raise ValueError(
            f"unsupported database URL {url!r}: "
            "use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"
        )

    def _driver(self) -> Driver:
        raise NotImplementedError

    async def _single(self, conn: AsyncConnection) -> None:
        """Let ``conn`` run its one statement without BEGIN/COMMIT."""

    async def _writing(self, conn: AsyncConnection) -> None:
        """Mark ``conn``'s next transaction as a writing one."""

    async def _prepare(self, conn: AsyncConnection) -> None:
        """Settle the database's own settings before the schema is created or checked."""

    async def _lock_schema(self, conn: AsyncConnection) -> None:
        """Hold off other instances creating the schema at the same moment."""

    async def _install(self, conn: AsyncConnection) -> None:
        """Create what the backend adds to the tables (the schema lock is held)."""

    async def _fetch_claim(self, sql: str, args: list[Any], locked: bool) -> list[Any]:
        raise NotImplementedError

    def insert_sql(self, codec: Codec) -> InsertSql:
        """The backend's insert statements, values converted by ``codec``."""
        raise NotImplementedError

    _begin = "BEGIN"

    def _update_sql(self, names: tuple[str, ...]) -> str:
        raise NotImplementedError

    def _ids(self, ids: Any) -> Any:
        raise NotImplementedError

    def _new_logs(self, changed: Mapping[int, list[dict[str, Any]]]) -> list[Any]:
        raise NotImplementedError

    def _outputs(self, outputs: Mapping[int, Any]) -> list[Any]:
        raise NotImplementedError

    def _tokens(self, tokens: Mapping[int, str]) -> Any:
        raise NotImplementedError

    def _logs_args(self, ids: Any, tokens: Any, live_after: Any, now: Any, logs: Any) -> list[Any]:
        raise NotImplementedError

    _delete_sql = _complete_sql = _logs_sql = ""
