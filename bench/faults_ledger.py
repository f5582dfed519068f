"""The fault-injection run's ledger: what each workflow step really did, kept outside the jobs.

A step writes ``started`` as its handler begins (and ``failed`` before an injected failure); its
workflow writes ``finished`` once the step's result came back, which is after the engine recorded
it. Rows go through the ledger's own
connection to a separate database (PostgreSQL) or file (SQLite). A write that fails (the server
restarting) is retried until it lands, and its ``key`` makes a retried write count once. ``seq``
orders the rows: a row written after another one committed gets a larger ``seq``.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiosqlite
import anyio

logger = logging.getLogger("faults.ledger")
STARTED, FINISHED = "started", "finished"
FAILED = "failed"  # a step's injected failure, written before it raises
RETRY_FOR = 120.0  # seconds a write keeps trying while the ledger's server is away
RETRY_EVERY = 0.2
WRITE_TIMEOUT = 10.0  # a write on a connection that hangs is retried on another
COLUMNS = "key, job, step, worker, attempt, phase, at"
SELECT = f"SELECT seq, {COLUMNS} FROM faults_ledger ORDER BY seq"


@dataclass(frozen=True, slots=True)
class Entry:
    """One ledger row."""

    seq: int
    key: str
    job: int
    step: str
    worker: str
    attempt: str
    phase: str
    at: float  # wall-clock seconds (time.time()) when it was written


class Ledger(Protocol):
    async def create(self) -> None: ...

    async def write(self, job: int, step: str, worker: str, attempt: str, phase: str) -> None: ...

    async def entries(self) -> list[Entry]: ...

    async def close(self) -> None: ...


def open_ledger(url: str) -> Ledger:
    """``sqlite:///PATH`` or a ``postgresql://`` DSN; connects on first use."""
    if url.startswith("sqlite:///"):
        return SqliteLedger(url.removeprefix("sqlite:///"))
    return PostgresLedger(url)


async def create(url: str) -> None:
    """Make the empty ledger table (the database itself must exist)."""
    ledger = open_ledger(url)
    try:
        await ledger.create()
    finally:
        await ledger.close()


async def read(url: str) -> list[Entry]:
    """Every row, in the order they were written."""
    ledger = open_ledger(url)
    try:
        return await ledger.entries()
    finally:
        await ledger.close()


def _row(job: int, step: str, worker: str, attempt: str, phase: str) -> tuple[Any, ...]:
    return (uuid.uuid4().hex, job, step, worker, attempt, phase, time.time())


async def _retrying(call: Callable[[], Awaitable[None]]) -> None:
    """Retry ``call`` until it succeeds or ``RETRY_FOR`` seconds have passed."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await call()
        except Exception as exc:
            if time.monotonic() > deadline:
                raise
            logger.info("ledger write retried: %s: %s", type(exc).__name__, exc)
            await anyio.sleep(RETRY_EVERY)


class PostgresLedger:
    """The ledger table in a database of its own, through a small asyncpg pool."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._pool: Any = None

    async def _connection_pool(self) -> Any:
        import asyncpg

        if self._pool is None:
            # Fast commits: a clean server restart still flushes them, and a lost row would
            # only hide a re-run, never invent one.
            settings = {"synchronous_commit": "off"}
            self._pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=4, server_settings=settings
            )
        return self._pool

    async def create(self) -> None:
        pool = await self._connection_pool()
        await pool.execute(
            "CREATE TABLE faults_ledger (seq bigserial PRIMARY KEY, key text UNIQUE NOT NULL,"
            " job bigint NOT NULL, step text NOT NULL, worker text NOT NULL,"
            " attempt text NOT NULL, phase text NOT NULL, at double precision NOT NULL)"
        )

    async def write(self, job: int, step: str, worker: str, attempt: str, phase: str) -> None:
        row = _row(job, step, worker, attempt, phase)

        async def insert() -> None:
            pool = await self._connection_pool()
            await pool.execute(
                f"INSERT INTO faults_ledger ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (key) DO NOTHING",
                *row,
                timeout=WRITE_TIMEOUT,
            )

        await _retrying(insert)

    async def entries(self) -> list[Entry]:
        pool = await self._connection_pool()
        return [Entry(*record) for record in await pool.fetch(SELECT)]

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()


class SqliteLedger:
    """The ledger table in a SQLite file of its own (WAL, one connection per process)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            db = await aiosqlite.connect(self.path, timeout=60, isolation_level=None)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            self._db = db
        return self._db

    async def create(self) -> None:
        db = await self._connection()
        await db.execute(
            "CREATE TABLE faults_ledger (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " key TEXT UNIQUE NOT NULL, job INTEGER NOT NULL, step TEXT NOT NULL,"
            " worker TEXT NOT NULL, attempt TEXT NOT NULL, phase TEXT NOT NULL, at REAL NOT NULL)"
        )

    async def write(self, job: int, step: str, worker: str, attempt: str, phase: str) -> None:
        row = _row(job, step, worker, attempt, phase)

        async def insert() -> None:
            db = await self._connection()
            await db.execute(
                f"INSERT OR IGNORE INTO faults_ledger ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        await _retrying(insert)

    async def entries(self) -> list[Entry]:
        db = await self._connection()
        async with db.execute(SELECT) as cursor:
            return [Entry(*record) for record in await cursor.fetchall()]

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            await db.close()
