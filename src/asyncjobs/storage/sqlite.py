"""SQLite through aiosqlite: one writer at a time, ``BEGIN IMMEDIATE``, and its own SQL for
the statements every batch sends (ids as a JSON array, inserts as multi-row ``VALUES``)."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Table, event
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from asyncjobs.errors import StorageError
from asyncjobs.storage.base import Row
from asyncjobs.storage.codec import Codec
from asyncjobs.storage.common import SqlStore
from asyncjobs.storage.fenced import update_owned_sql
from asyncjobs.storage.held import Driver
from asyncjobs.storage.inserts import RETURNING, BackendInserts, Insert, Statement, keyed
from asyncjobs.storage.tables import COLUMN_LIST, INSERT_COLUMNS, RETURNING_ALL

BUSY_TIMEOUT_MS = 30_000
# How long open() waits for another connection to finish switching a new file to WAL.
WAL_SWITCH_WAIT = 10.0
_WRITE = "asyncjobs_write"
_SINGLE = "asyncjobs_single"
# Each job's own token (a JSON object: id -> token) must still hold a live lease.
_OWNED = (
    "processing_token = (SELECT t.value FROM json_each(?) AS t "
    "WHERE t.key = CAST(asyncjobs_jobs.id AS TEXT)) AND processing_until > ? RETURNING id"
)
_IDS = "id IN (SELECT value FROM json_each(?))"
# Rows per INSERT: far below SQLite's 32,766 bound parameters at one per column.
MAX_STATEMENT_ROWS = 500
_UNFINISHED = "completed_at IS NULL AND has_error = 0"  # the idempotency keys' index


class SqliteStore(SqlStore):
    """A job store in one SQLite file (or in memory)."""

    def _new_write_gate(self) -> AbstractAsyncContextManager[Any]:
        # SQLite has one writer at a time; connections of one process that race for it wait
        # in SQLite's sleeping busy handler (1, 2, 5 ... 100 ms), so they queue on an async
        # lock instead and only other processes ever meet the busy handler.
        return anyio.Lock(fast_acquire=True)  # the statement that follows yields

    def _create_engine(self) -> AsyncEngine:
        database = make_url(self.url).database
        in_memory = database in (None, "", ":memory:")
        if not in_memory:
            check_folder(str(database))
        options: dict[str, Any] = {
            "connect_args": {"timeout": BUSY_TIMEOUT_MS / 1000},
            "hide_parameters": True,  # bound values (job inputs) stay out of errors and logs
        }
        if in_memory:
            options["poolclass"] = StaticPool
        engine = create_async_engine(self.url, **options)
        event.listen(engine.sync_engine, "connect", _on_connect)
        event.listen(engine.sync_engine, "begin", _on_begin)
        return engine

    def _driver(self) -> Driver:
        # aiosqlite raises ValueError("Connection closed"); sqlite3 a ProgrammingError.
        lost = (OSError, ValueError, sqlite3.ProgrammingError)
        return Driver(
            errors=(sqlite3.Error, *lost), lost=lost, sizes={False: 1}, relax=None, fetch=_fetch
        )

    async def _single(self, conn: AsyncConnection) -> None:
        # Connections are already in driver autocommit (see ``_on_connect``), so only our
        # BEGIN is skipped; switching SQLAlchemy's isolation level would cost driver round
        # trips on every checkout and check-in.
        await conn.execution_options(**{_SINGLE: True})

    async def _writing(self, conn: AsyncConnection) -> None:
        await conn.execution_options(**{_WRITE: True})

    async def _prepare(self, conn: AsyncConnection) -> None:
        """Make sure the file is in WAL mode. A connection that met another one switching a
        new file to WAL at the same moment could not switch it itself (see ``_on_connect``):
        try again until the file reads WAL (an in-memory database stays in its own mode)."""
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        with anyio.fail_after(WAL_SWITCH_WAIT):
            while True:
                try:
                    cursor = await raw.execute("PRAGMA journal_mode=WAL")
                    (mode,) = await cursor.fetchone()
                    if mode in ("wal", "memory"):
                        return
                except sqlite3.OperationalError as exc:
                    if not _locked(exc):
                        raise
                await anyio.sleep(0.01)

    def upsert(self, table: Table) -> Any:
        return sqlite.insert(table)

    _begin = "BEGIN IMMEDIATE"

    async def _fetch_claim(self, sql: str, args: list[Any], locked: bool) -> list[Any]:
        # The write lock already serialises every claim, keyed or not.
        return await self.held.fetch(sql, args)

    def insert_sql(self, codec: Codec) -> SqliteInserts:
        return SqliteInserts(codec)

    def _update_sql(self, names: tuple[str, ...]) -> str:
        return update_owned_sql(names, "?")

    def _ids(self, ids: Any) -> Any:
        return json.dumps(list(ids))

    def _new_logs(self, changed: Mapping[int, list[dict[str, Any]]]) -> list[Any]:
        return [json.dumps({str(k): json.dumps(v) for k, v in changed.items()})]

    def _outputs(self, outputs: Mapping[int, Any]) -> list[Any]:
        return self._new_logs(outputs)  # the same shape: id -> JSON text

    def _tokens(self, tokens: Mapping[int, str]) -> Any:
        return json.dumps({str(k): v for k, v in tokens.items()})

    def _logs_args(self, ids: Any, tokens: Any, live_after: Any, now: Any, logs: Any) -> list[Any]:
        keys = json.loads(ids)
        texts = json.dumps({str(k): json.dumps(log) for k, log in zip(keys, logs, strict=True)})
        return [now, texts, ids, tokens, live_after]

    _delete_sql = f"DELETE FROM asyncjobs_jobs WHERE {_IDS} AND {_OWNED}"
    # A job whose log changed gets its new log in the same statement, and every job its output.
    _complete_sql = (  # plain ? marks: numbered ones are deprecated by Python 3.12's sqlite3
        "UPDATE asyncjobs_jobs SET completed_at = ?, processing_until = NULL, "
        "processing_token = NULL, total_tried = total_tried + 1, updated_at = ?, "
        "log = COALESCE((SELECT l.value FROM json_each(?) AS l "
        "WHERE l.key = CAST(asyncjobs_jobs.id AS TEXT)), log), "
        "output = (SELECT o.value FROM json_each(?) AS o "
        "WHERE o.key = CAST(asyncjobs_jobs.id AS TEXT)) "
        f"WHERE {_IDS} AND {_OWNED}"
    )
    # Step logs of several jobs: ids, tokens and logs as JSON, then live_after and now.
    _logs_sql = (
        "UPDATE asyncjobs_jobs SET updated_at = ?, log = (SELECT l.value FROM json_each(?) AS l "
        f"WHERE l.key = CAST(asyncjobs_jobs.id AS TEXT)) WHERE {_IDS} AND {_OWNED}"
    )

    def _complete_args(self, args: list[Any]) -> list[Any]:
        ids, token, live_after, now, logs, outputs = args
        return [now, now, logs, outputs, ids, token, live_after]


class SqliteInserts(BackendInserts):
    """Inserts as multi-row ``VALUES`` of at most ``MAX_STATEMENT_ROWS`` rows, key lists as
    JSON arrays; no locks (``BEGIN IMMEDIATE`` already serialises writers)."""

    def single(self, rows: Sequence[Row], supersede: Sequence[str]) -> bool:
        return not (supersede or keyed(rows)) and len(rows) <= MAX_STATEMENT_ROWS

    def lock(self, namespace: str, keys: Sequence[str]) -> list[Statement]:
        return []

    def insert(self, rows: Sequence[Row]) -> list[Insert]:
        return [
            self._insert(rows[start : start + MAX_STATEMENT_ROWS])
            for start in range(0, len(rows), MAX_STATEMENT_ROWS)
        ]

    def _insert(self, rows: Sequence[Row]) -> Insert:
        columns = [self.codec.column(name, rows) for name in INSERT_COLUMNS]
        args = [value for values in zip(*columns, strict=True) for value in values]
        return _insert_values(len(rows)), args, rows

    def inserted(self, rows: Sequence[Row], fetched: Sequence[Sequence[Any]]) -> list[Row]:
        return self._returned.rows(rows, fetched)

    def holders(self, keys: Sequence[str]) -> Statement:
        sql = (
            f"SELECT {RETURNING_ALL} FROM asyncjobs_jobs WHERE "
            f"idempotency_key IN (SELECT value FROM json_each(?)) AND {_UNFINISHED}"
        )
        return sql, [json.dumps(list(keys))]

    def supersede(self, keys: Sequence[str], keep: Sequence[int], now: datetime) -> Statement:
        return _SUPERSEDE, [json.dumps(list(keys)), json.dumps(list(keep)), self.codec.time(now)]


_SUPERSEDE = (
    "DELETE FROM asyncjobs_jobs WHERE concurrency_key IN (SELECT value FROM json_each(?)) "
    f"AND id NOT IN (SELECT value FROM json_each(?)) AND {_UNFINISHED} "
    "AND (processing_until IS NULL OR processing_until <= ?) AND total_tried = 0 AND log IS NULL"
)


def check_folder(database: str) -> None:
    """Fail early and clearly where the driver would fail late (a SQLite file's folder)."""
    folder = Path(database).expanduser().resolve().parent
    if not folder.is_dir():
        raise StorageError(f"cannot open SQLite database {database!r}: {folder} does not exist")


def missing_file(url: str) -> str | None:
    """The path of the SQLite file ``url`` names when it does not exist (opening it would
    create an empty database there); ``None`` otherwise."""
    database = make_url(url).database
    if database in (None, "", ":memory:") or Path(str(database)).exists():
        return None
    return str(database)


async def _fetch(driver: Any, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
    return list(await driver.execute_fetchall(sql, args))


def _on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so that writes can BEGIN IMMEDIATE: a deferred
    # transaction that upgrades to a write lock fails at once under WAL instead of waiting.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (f"busy_timeout={BUSY_TIMEOUT_MS}", "synchronous=NORMAL", "foreign_keys=ON"):
        cursor.execute(f"PRAGMA {pragma}")
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        # Another connection is switching a new file to WAL at this moment, and SQLite refuses
        # at once rather than wait; ``SqliteStore.open()`` waits for the switch to finish.
        if not _locked(exc):
            raise
    cursor.close()


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "database is locked" in str(exc)


def _on_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(_SINGLE, False):
        return  # a single statement is its own transaction
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE, False) else "BEGIN")


@functools.lru_cache(maxsize=32)
def _insert_values(count: int) -> str:
    group = "(" + ", ".join("?" * len(INSERT_COLUMNS)) + ")"
    values = ", ".join([group] * count)
    return (
        f"INSERT INTO asyncjobs_jobs ({COLUMN_LIST}) VALUES {values} "
        f"ON CONFLICT (idempotency_key) WHERE {_UNFINISHED} DO NOTHING RETURNING {RETURNING}"
    )
