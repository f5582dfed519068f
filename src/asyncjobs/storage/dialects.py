"""The few places SQLite and PostgreSQL differ: engine setup, write locks, claim locking."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from contextlib import AbstractAsyncContextManager, nullcontext
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import Table, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from asyncjobs.errors import StorageError

WRITE = "asyncjobs_write"
SINGLE = "asyncjobs_single"
_PG_SCHEMA_LOCK = 0x61736A6F62  # "asjob": serialises schema creation across instances
PG_CLAIM_LOCK = 0x61736A6F63  # serialises claims of keyed jobs across instances
SQLITE_BUSY_TIMEOUT_MS = 30_000


def create_engine(url: str, *, name: str = "asyncjobs") -> AsyncEngine:
    """An async engine for ``url``, tuned for short write transactions.

    ``name`` becomes PostgreSQL's ``application_name``, which tells an instance's own job
    notifications from other instances'.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(url, in_memory=parsed.database in (None, "", ":memory:"))
    if parsed.get_backend_name() == "postgresql":
        # Keyed claims rely on each statement taking a fresh snapshot after the claim lock.
        engine = create_async_engine(
            url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=False,
            isolation_level="READ COMMITTED",
            hide_parameters=True,  # bound values (job inputs) stay out of errors and logs
            connect_args={"server_settings": {"application_name": name}},
        )
        event.listen(engine.sync_engine, "checkout", _replace_closed)
        return engine
    raise ValueError(
        f"unsupported database URL {parsed.render_as_string(hide_password=True)!r}: "
        "use sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"
    )


def _replace_closed(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Replace a pooled connection the server closed meanwhile (a restart, a terminated
    backend) before it is used: asyncpg already knows, so this costs no round trip, and the
    statement about to be sent goes to a live connection instead of failing."""
    if dbapi_connection.driver_connection.is_closed():
        raise DisconnectionError("the server closed this connection")


def write_gate(url: str) -> AbstractAsyncContextManager[Any]:
    """What a write transaction of this process holds first.

    SQLite has one writer at a time; connections of one process that race for it wait in
    SQLite's sleeping busy handler (1, 2, 5 ... 100 ms), so they queue on an async lock instead
    and only other processes ever meet the busy handler.
    """
    if make_url(url).get_backend_name() == "sqlite":
        return anyio.Lock()
    return nullcontext()


def check_url(url: str) -> None:
    """Fail early and clearly where the driver would fail late (a SQLite file's folder)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    folder = Path(parsed.database).expanduser().resolve().parent
    if not folder.is_dir():
        raise StorageError(
            f"cannot open SQLite database {parsed.database!r}: {folder} does not exist"
        )


def _sqlite_engine(url: str, *, in_memory: bool) -> AsyncEngine:
    options: dict[str, Any] = {
        "connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        "hide_parameters": True,  # bound values (job inputs) stay out of errors and logs
    }
    if in_memory:
        options["poolclass"] = StaticPool
    engine = create_async_engine(url, **options)
    event.listen(engine.sync_engine, "connect", _sqlite_connect)
    event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from the driver so that writes can BEGIN IMMEDIATE: a deferred
    # transaction that upgrades to a write lock fails at once under WAL instead of waiting.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
        "foreign_keys=ON",
    ):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    options = conn.get_execution_options()
    if options.get(SINGLE, False):
        return  # a single statement is its own transaction
    conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(WRITE, False) else "BEGIN")


async def single_statement(conn: AsyncConnection) -> None:
    """Let ``conn`` run its one statement without BEGIN/COMMIT.

    SQLite connections are already in driver autocommit (see ``_sqlite_connect``), so only
    our BEGIN is skipped; switching SQLAlchemy's isolation level there would cost driver
    round trips on every checkout and check-in.
    """
    if conn.dialect.name == "sqlite":
        await conn.execution_options(**{SINGLE: True})
    else:
        await conn.execution_options(isolation_level="AUTOCOMMIT")


async def lock_schema(conn: AsyncConnection) -> None:
    """Hold off other instances creating the schema at the same moment."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_SCHEMA_LOCK})


async def lock_keyed_claims(conn: AsyncConnection) -> None:
    """Serialise claims that consider concurrency keys.

    Without it two PostgreSQL instances could each lock a different job of one key, both
    seeing the key free (for example when they claim different queues or orders). Every claim
    of an instance that has a keyed definition takes it, so a key's lease is committed before
    the next keyed claim's statement takes its snapshot. SQLite's write lock already
    serialises every claim.
    """
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_CLAIM_LOCK})


async def lock_keys(conn: AsyncConnection, namespace: str, keys: Iterable[str]) -> None:
    """Hold each of ``keys`` until the transaction ends, so that per-key decisions (which
    pending job a superseding insert drops) see every earlier decision committed.

    PostgreSQL takes transaction-scoped advisory locks, in one order so that two callers
    never deadlock; SQLite's write lock (``BEGIN IMMEDIATE``) already serialises writers.
    """
    if conn.dialect.name != "postgresql":
        return
    for lock in sorted({advisory_key(namespace, key) for key in keys}):
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})


def advisory_key(namespace: str, key: str) -> int:
    """A stable signed 64-bit advisory lock id for ``key`` (the same in every process)."""
    digest = hashlib.blake2b(f"{namespace}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def upsert(conn: AsyncConnection, table: Table) -> Any:
    """An INSERT with ``on_conflict_do_update``: each backend has its own construct for it."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
