"""The statements every batch sends (claim, completion, insert), run as direct driver calls.

A drained job costs two statements, and SQLAlchemy's async execution path around each (pool
checkout and return, execution context, result processing, and on SQLite five thread hops)
took four times what the database needed. These few statements are therefore compiled once to
the driver's own SQL and run on driver connections that stay checked out of the engine's pool:
one call per statement (one thread hop on aiosqlite, one round trip on asyncpg), with the
values converted here exactly as the column types in ``tables`` convert them, so rows written
either way read the same either way. Everything else still goes through SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, StaticPool

from asyncjobs.errors import ConnectionLost
from asyncjobs.storage.dialects import PG_CLAIM_LOCK
from asyncjobs.storage.errors import storage_error
from asyncjobs.storage.tables import jobs

Row = dict[str, Any]
T = TypeVar("T")

COLUMNS: tuple[str, ...] = tuple(c.name for c in jobs.c)
INSERT_COLUMNS: tuple[str, ...] = tuple(name for name in COLUMNS if name != "id")
_TIMES = frozenset({"wait_until", "processing_until", "completed_at", "created_at", "updated_at"})
_JSON = frozenset({"input", "meta", "error", "log", "trace_context"})
_FLAGS = frozenset({"has_error", "exclusive"})
# A column's value when an inserted row leaves it out (the table's server defaults).
_INSERT_DEFAULTS: dict[str, Any] = {"has_error": False, "total_tried": 0, "exclusive": False}
STATEMENT_GRACE = 60.0  # seconds a hot statement may run, cancelled or not
MAX_INSERT_ROWS = 500  # larger batches take the SQLAlchemy path (bound-parameter limits)
# Driver connections held for these statements on PostgreSQL (SQLite needs one): durable ones for
# inserts and writes, relaxed ones for claims. The engine's pool (10 + 10) keeps the rest.
MAX_HELD = {False: 6, True: 2}


class Codec:
    """How one backend's driver takes and returns our column values."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.encoders = {name: self._encoder(name) for name in COLUMNS}

    def _encoder(self, name: str) -> Callable[[Any], Any] | None:
        """How a column's values are passed to the driver; ``None``: as they are."""
        if name in _JSON:
            return self.json
        if not self.sqlite:  # asyncpg takes aware datetimes and booleans as they are
            return None
        if name in _TIMES:
            return self.time
        return self.flag if name in _FLAGS else None

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: asyncjobs needs timezone-aware times")
        if self.sqlite:  # the text SQLAlchemy's SQLite DATETIME stores: naive UTC, sortable
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def json(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def flag(self, value: Any) -> Any:
        return int(bool(value)) if self.sqlite else bool(value)

    def encode(self, name: str, value: Any) -> Any:
        encoder = self.encoders[name]
        return value if encoder is None else encoder(value)

    def column(self, name: str, rows: Sequence[Row]) -> list[Any]:
        """One column of ``rows`` to insert, encoded; a missing value takes the default."""
        default = _INSERT_DEFAULTS.get(name)
        values = [row.get(name, default) for row in rows]
        encoder = self.encoders[name]
        return values if encoder is None else [encoder(value) for value in values]

    def decode_row(self, values: Sequence[Any]) -> Row:
        """A ``RETURNING`` row of every column, as ``Store`` rows look."""
        row = dict(zip(COLUMNS, values, strict=True))
        for name in _TIMES:
            value = row[name]
            if value is not None:
                row[name] = _parse_time(value) if self.sqlite else _utc(value)
        if self.sqlite:
            # asyncpg's jsonb codec (installed by SQLAlchemy) already hands back Python values,
            # strings included, so only SQLite's text is decoded here.
            for name in _JSON:
                value = row[name]
                if value is not None:
                    row[name] = json.loads(value)
            row["has_error"] = bool(row["has_error"])
            row["exclusive"] = bool(row["exclusive"])
        return row


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    # As ``UTCDateTime`` reads it: asyncpg hands back the earliest times naive.
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Compiled:
    """A SQLAlchemy statement compiled once to the driver's SQL and parameter order."""

    def __init__(self, statement: Any, engine: AsyncEngine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = dict(compiled.params)

    def args(self, params: Mapping[str, Any], codec: Codec) -> list[Any]:
        values = {**self.defaults, **params}
        return [
            codec.time(values[name]) if isinstance(values[name], datetime) else values[name]
            for name in self.names
        ]


class _Held:
    def __init__(
        self, conn: AsyncConnection, pooled: PoolProxiedConnection, *, relaxed: bool
    ) -> None:
        self.conn, self.pooled, self.relaxed = conn, pooled, relaxed
        self.driver: Any = pooled.driver_connection


class HotPath:
    """Direct driver calls for the per-batch statements, on connections held from the pool."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.codec = Codec(self.dialect)
        # Idle held connections; ``True``: claims' connections, which commit asynchronously.
        self._idle: dict[bool, list[_Held]] = {False: [], True: []}
        self._slots = {
            relaxed: anyio.Semaphore(1 if self.codec.sqlite else count)
            for relaxed, count in MAX_HELD.items()
        }
        self._errors, self._lost = _driver_errors(self.dialect)
        # SQLite's ``:memory:`` database lives in the one connection its StaticPool shares.
        self._shared = isinstance(engine.sync_engine.pool, StaticPool)
        self._closed = False
        self._statements: dict[Any, Compiled] = {}

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {False: [], True: []}
        for held in [*idle[False], *idle[True]]:
            await _release(held)

    @asynccontextmanager
    async def _connection(self, *, relaxed: bool = False) -> AsyncIterator[Any]:
        relaxed = relaxed and not self.codec.sqlite
        async with self._slots[relaxed]:
            held = await self._take(relaxed)
            try:
                yield held.driver
            except BaseException as exc:
                refused = isinstance(exc, self._errors)
                lost = isinstance(exc, self._lost)
                if self._shared or (refused and not lost):
                    # A refused statement leaves its connection as it was; the shared in-memory
                    # SQLite connection is the database itself (aiosqlite queues its calls).
                    self._idle[relaxed].append(held)
                else:
                    await self._retire(held, exc, lost=lost)
                if lost:
                    raise storage_error("statement", exc, ConnectionLost) from None
                if refused:
                    raise storage_error("statement", exc) from None
                raise
            if self._closed:  # the store has closed and disposed of its pool meanwhile
                with anyio.CancelScope(shield=True):
                    await _discard(held)
            else:
                self._idle[relaxed].append(held)

    async def _take(self, relaxed: bool) -> _Held:
        """An idle held connection, or a new one when there is none or the server closed it.

        A connection the server closed while it sat idle (a restart, ``pg_terminate_backend``)
        is known to be closed before anything is sent on it, so it is replaced at no risk:
        this is what lets the first statement after a restart succeed.
        """
        idle = self._idle[relaxed]
        if idle and not self._shared and _closed(idle[-1].driver):
            gone = ConnectionLost("the server closed the connection")
            await self._retire(idle.pop(), gone, lost=True)  # and every other idle one
            idle = self._idle[relaxed]
        return idle.pop() if idle else await self._borrow(relaxed)

    async def _retire(self, held: _Held, exc: BaseException, *, lost: bool) -> None:
        """Drop a connection whose state is unknown (a call failed or was cut off).

        When the server went away, the other held connections and the pool's are gone too: they
        are dropped now, and the pool replaces its older connections at their next checkout,
        as SQLAlchemy does on a disconnect, so one statement fails rather than one per
        connection.
        """
        stale = [held]
        if lost:
            stale += [*self._idle[False], *self._idle[True]]
            self._idle = {False: [], True: []}
            if not self.codec.sqlite:
                self.engine.sync_engine.pool._invalidate(held.pooled, exc, _checkin=False)
        with anyio.CancelScope(shield=True):
            for connection in stale:
                await _discard(connection)

    async def _borrow(self, relaxed: bool) -> _Held:
        failed: Errors = (SQLAlchemyError, *self._errors)
        try:
            return await _unbroken(self._connect(relaxed))
        except failed as exc:
            raise ConnectionLost(f"could not connect to the database: {exc}") from exc

    async def _connect(self, relaxed: bool) -> _Held:
        conn = await self.engine.connect()
        try:
            held = _Held(conn, await conn.get_raw_connection(), relaxed=relaxed)
            assert held.driver is not None
            if relaxed:
                await held.driver.execute(_RELAX)
            return held
        except BaseException:
            await conn.close()
            raise

    async def fetch(
        self, sql: str, args: Sequence[Any], *, relaxed: bool = False, fenced: bool = False
    ) -> list[Sequence[Any]]:
        """Run one statement in autocommit; its rows.

        ``relaxed``: on PostgreSQL, the commit does not wait for the WAL flush (see ``claim``).
        ``fenced``: the statement writes only rows its lease token still holds, so running it
        twice is harmless (it writes the same values again, or, once the first run cleared the
        token, nothing): when its connection breaks mid-way (it may or may not have committed),
        it is sent once more on a fresh connection.
        """
        try:
            return await self._fetch_once(sql, args, relaxed)
        except ConnectionLost:
            if not fenced:
                raise
        return await self._fetch_once(sql, args, relaxed)

    async def _fetch_once(
        self, sql: str, args: Sequence[Any], relaxed: bool
    ) -> list[Sequence[Any]]:
        async with self._connection(relaxed=relaxed) as driver:
            if self.codec.sqlite:
                return list(await _unbroken(driver.execute_fetchall(sql, args)))
            return list(await _unbroken(driver.fetch(sql, *args)))

    async def fetch_locked(self, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
        """Run one statement in a transaction holding the keyed-claim lock (PostgreSQL)."""
        if self.codec.sqlite:  # SQLite's write lock already serialises every claim
            return await self.fetch(sql, args)

        async def locked(driver: Any) -> list[Sequence[Any]]:
            async with driver.transaction(isolation="read_committed"):
                await driver.execute("SELECT pg_advisory_xact_lock($1)", PG_CLAIM_LOCK)
                return list(await driver.fetch(sql, *args))

        async with self._connection(relaxed=True) as driver:
            return await _unbroken(locked(driver))

    # -- the statements ------------------------------------------------------------------

    async def claim(self, statement: Any, params: Mapping[str, Any], *, locked: bool) -> list[Row]:
        """Lease jobs; on PostgreSQL the lease commits without waiting for its WAL flush.

        Losing a claim to a server crash loses no job and runs nothing twice that a durable
        claim would not: the job is unleased again after recovery, and every later write of
        the worker is fenced by the lost token, so it records nothing. A durable write that
        follows (a step, a completion) flushes the WAL up to it, the claim included.
        """
        compiled = self._compiled(statement)
        args = compiled.args(params, self.codec)
        if locked:
            rows = await self.fetch_locked(compiled.sql, args)
        else:
            rows = await self.fetch(compiled.sql, args, relaxed=True)
        return [self.codec.decode_row(r) for r in rows]

    async def delete_owned(
        self, ids: Sequence[int], token: str, *, live_after: datetime
    ) -> set[int]:
        sql = _delete_sql(self.dialect)
        args = [self._ids(ids), token, self.codec.time(live_after)]
        return {r[0] for r in await self.fetch(sql, args, fenced=True)}

    async def complete_owned(
        self,
        logs: Mapping[int, list[dict[str, Any]] | None],
        token: str,
        *,
        live_after: datetime,
        now: datetime,
    ) -> set[int]:
        changed = {job_id: log for job_id, log in logs.items() if log is not None}
        stamp = self.codec.time(now)
        if self.codec.sqlite:
            new_logs: Any = [json.dumps({str(k): json.dumps(v) for k, v in changed.items()})]
        else:
            new_logs = [list(changed), [json.dumps(v) for v in changed.values()]]
        args = [self._ids(logs), token, self.codec.time(live_after), stamp, *new_logs]
        return {r[0] for r in await self.fetch(_complete_sql(self.dialect), args, fenced=True)}

    async def update_owned(
        self, job_id: int, token: str, *, live_after: datetime, values: Mapping[str, Any]
    ) -> bool:
        """Write ``values`` to one job while ``token`` holds its lease; whether it did."""
        names = tuple(values)
        sql = _update_sql(self.dialect, names)
        args = [self.codec.encode(name, values[name]) for name in names]
        args += [job_id, token, self.codec.time(live_after)]
        return bool(await self.fetch(sql, args, fenced=True))

    async def insert(self, rows: Sequence[Row]) -> list[Row]:
        """Insert ``rows`` in one statement; rows come back in id (insertion) order."""
        codec = self.codec
        columns = [codec.column(name, rows) for name in INSERT_COLUMNS]
        if codec.sqlite:
            sql = _insert_values_sql(len(rows))
            args = [value for values in zip(*columns, strict=True) for value in values]
        else:
            sql, args = _insert_unnest_sql(), columns
        result = [codec.decode_row(r) for r in await self.fetch(sql, args)]
        result.sort(key=lambda row: row["id"])
        return result

    def _ids(self, ids: Any) -> Any:
        return json.dumps(list(ids)) if self.codec.sqlite else list(ids)

    def _compiled(self, statement: Any) -> Compiled:
        # Statements are the store's prebuilt templates, so this holds a few entries.
        compiled = self._statements.get(statement)
        if compiled is None:
            compiled = self._statements[statement] = Compiled(statement, self.engine)
        return compiled


Errors = tuple[type[BaseException], ...]


def _driver_errors(dialect: str) -> tuple[Errors, Errors]:
    """The driver's errors (storage errors to the caller), and those of them that mean the
    connection is gone."""
    if dialect == "sqlite":
        # aiosqlite raises ValueError("Connection closed"); sqlite3 a ProgrammingError.
        lost: Errors = (OSError, ValueError, sqlite3.ProgrammingError)
        return (sqlite3.Error, *lost), lost
    import asyncpg  # type: ignore[import-untyped]

    lost = (
        OSError,
        asyncpg.InterfaceError,
        asyncpg.InternalClientError,
        asyncpg.PostgresConnectionError,
        asyncpg.exceptions.OperatorInterventionError,  # the server shutting down
    )
    return (asyncpg.PostgresError, *lost), lost


async def _unbroken(call: Awaitable[T]) -> T:
    """Await one driver call to its end even if the caller is cancelled meanwhile.

    A call cut off half-way leaves its connection unusable (asyncpg) or its statement running
    on anyway (aiosqlite); statements take milliseconds, so the cancellation takes effect at
    the caller's next checkpoint instead. A call still running after ``STATEMENT_GRACE``
    seconds is abandoned as a storage error, and its connection is discarded.
    """
    with anyio.move_on_after(STATEMENT_GRACE, shield=True):
        return await call
    raise ConnectionLost(f"a statement took longer than {STATEMENT_GRACE:g} s")


def _closed(driver: Any) -> bool:
    """Whether the driver already knows its connection is closed (nothing sent to learn it)."""
    is_closed = getattr(driver, "is_closed", None)  # asyncpg
    if is_closed is not None:
        return bool(is_closed())
    return getattr(driver, "_connection", True) is None  # aiosqlite, once closed


async def _release(held: _Held) -> None:
    """Give a held connection back to the pool; a relaxed one is closed, keeping its setting
    out of the pool's other uses."""
    if held.relaxed:
        await _discard(held)
    else:
        await held.conn.close()


async def _discard(held: _Held) -> None:
    """Close a held connection for good; it may already be broken, so this never raises."""
    with contextlib.suppress(Exception):
        await held.conn.invalidate()
    with contextlib.suppress(Exception):
        await held.conn.close()


_RELAX = "SET synchronous_commit = off"
_RETURN_ALL = ", ".join(f'"{name}"' for name in COLUMNS)


@functools.cache
def _delete_sql(dialect: str) -> str:
    if dialect == "sqlite":
        ids = "id IN (SELECT value FROM json_each(?))"
        return (
            f"DELETE FROM asyncjobs_jobs WHERE {ids} AND processing_token = ? "
            "AND processing_until > ? RETURNING id"
        )
    return (
        "DELETE FROM asyncjobs_jobs WHERE id = ANY($1::bigint[]) AND processing_token = $2 "
        "AND processing_until > $3 RETURNING id"
    )


@functools.cache
def _complete_sql(dialect: str) -> str:
    """Complete owned jobs; a job whose log changed gets its new log in the same statement."""
    if dialect == "sqlite":
        return (
            "UPDATE asyncjobs_jobs SET completed_at = ?4, processing_until = NULL, "
            "processing_token = NULL, total_tried = total_tried + 1, updated_at = ?4, "
            "log = COALESCE((SELECT l.value FROM json_each(?5) AS l "
            "WHERE l.key = CAST(asyncjobs_jobs.id AS TEXT)), log) "
            "WHERE id IN (SELECT value FROM json_each(?1)) AND processing_token = ?2 "
            "AND processing_until > ?3 RETURNING id"
        )
    return (
        "UPDATE asyncjobs_jobs SET completed_at = $4, processing_until = NULL, "
        "processing_token = NULL, total_tried = total_tried + 1, updated_at = $4, "
        "log = COALESCE((SELECT l.log FROM unnest($5::bigint[], $6::jsonb[]) AS l(id, log) "
        "WHERE l.id = asyncjobs_jobs.id), asyncjobs_jobs.log) "
        "WHERE id = ANY($1::bigint[]) AND processing_token = $2 "
        "AND processing_until > $3 RETURNING id"
    )


@functools.lru_cache(maxsize=64)
def _update_sql(dialect: str, names: tuple[str, ...]) -> str:
    unknown = set(names) - set(INSERT_COLUMNS)
    if unknown or not names:
        raise ValueError(f"cannot update job columns {sorted(unknown) or names}")
    marks = [("?" if dialect == "sqlite" else f"${i}") for i in range(1, len(names) + 4)]
    assignments = ", ".join(f'"{name}" = {mark}' for name, mark in zip(names, marks, strict=False))
    key, token, live_after = marks[len(names) :]
    return (
        f"UPDATE asyncjobs_jobs SET {assignments} WHERE id = {key} "
        f"AND processing_token = {token} AND processing_until > {live_after} RETURNING id"
    )


_COLUMN_LIST = ", ".join(f'"{name}"' for name in INSERT_COLUMNS)


@functools.lru_cache(maxsize=32)
def _insert_values_sql(count: int) -> str:
    group = "(" + ", ".join("?" * len(INSERT_COLUMNS)) + ")"
    values = ", ".join([group] * count)
    return f"INSERT INTO asyncjobs_jobs ({_COLUMN_LIST}) VALUES {values} RETURNING {_RETURN_ALL}"


_PG_ARRAY_TYPES: dict[str, str] = {
    "queue": "varchar",
    "task_slug": "varchar",
    "workflow_slug": "varchar",
    "input": "jsonb",
    "meta": "jsonb",
    "wait_until": "timestamptz",
    "processing_until": "timestamptz",
    "processing_token": "varchar",
    "completed_at": "timestamptz",
    "has_error": "boolean",
    "error": "jsonb",
    "total_tried": "integer",
    "log": "jsonb",
    "concurrency_key": "varchar",
    "exclusive": "boolean",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
    "trace_context": "jsonb",
}


@functools.cache
def _insert_unnest_sql() -> str:
    """One statement for any number of rows: each column is one array parameter."""
    arrays = ", ".join(
        f"${i}::{_PG_ARRAY_TYPES[name]}[]" for i, name in enumerate(INSERT_COLUMNS, start=1)
    )
    return (
        f"INSERT INTO asyncjobs_jobs ({_COLUMN_LIST}) SELECT * FROM unnest({arrays}) "
        f"RETURNING {_RETURN_ALL}"
    )
