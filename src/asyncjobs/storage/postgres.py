"""PostgreSQL through asyncpg: pool sizes, advisory locks, claims that commit without waiting
for the WAL flush, NOTIFY on insert, and its own SQL for the statements every batch sends
(ids as ``ANY($1)`` arrays, inserts as one ``unnest`` of column arrays)."""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Dialect, Table, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from asyncjobs.storage import notify
from asyncjobs.storage.base import FinishedBus, ListenerState, Row, Wake
from asyncjobs.storage.codec import Codec
from asyncjobs.storage.common import SqlStore
from asyncjobs.storage.fenced import update_owned_sql
from asyncjobs.storage.held import Driver, unbroken
from asyncjobs.storage.inserts import RETURNING, BackendInserts, Insert, Statement, keyed
from asyncjobs.storage.tables import COLUMN_LIST, INSERT_COLUMNS, RETURNING_ALL, jobs

SCHEMA_LOCK = 0x61736A6F62  # "asjob": serialises schema creation across instances
CLAIM_LOCK = 0x61736A6F63  # serialises claims of keyed jobs across instances
RELAX = "SET synchronous_commit = off"
# Driver connections held for the batch statements: durable ones for inserts and writes,
# relaxed ones for claims. The engine's pool (10 + 10) keeps the rest.
MAX_HELD = {False: 6, True: 2}
_GENERATION = "asyncjobs_generation"
# Each job's own token ($2, aligned with the ids of $1) must still hold a live lease.
_TOKENS = "unnest($1::bigint[], $2::text[]) AS t(id, token)"
_OWNED = (
    "asyncjobs_jobs.id = t.id AND processing_token = t.token AND processing_until > $3 "
    "RETURNING asyncjobs_jobs.id"
)
_UNFINISHED = "completed_at IS NULL AND has_error = false"  # the idempotency keys' index


class PostgresStore(SqlStore):
    """A job store in one PostgreSQL database, shared by any number of processes."""

    def _create_engine(self) -> AsyncEngine:
        # Keyed claims rely on each statement taking a fresh snapshot after the claim lock.
        # ``application_name`` tells an instance's own job notifications from others'.
        engine = create_async_engine(
            self.url,
            pool_size=10,
            max_overflow=10,
            pool_pre_ping=False,
            isolation_level="READ COMMITTED",
            hide_parameters=True,  # bound values (job inputs) stay out of errors and logs
            connect_args={"server_settings": {"application_name": self.name}},
        )
        self._generation = 0
        self._finished = notify.FinishedListener()
        event.listen(engine.sync_engine, "connect", self._on_connect)
        event.listen(engine.sync_engine, "checkout", self._on_checkout)
        return engine

    def _on_connect(self, _dbapi_connection: Any, record: Any) -> None:
        record.info[_GENERATION] = self._generation

    def _on_checkout(self, dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        """Replace a pooled connection the server closed meanwhile (a restart, a terminated
        backend) before it is used, or one older than the last lost connection: asyncpg
        already knows, so this costs no round trip, and the statement about to be sent goes
        to a live connection instead of failing (raising ``DisconnectionError`` here is how
        a pool event asks for a fresh connection)."""
        stale = record.info.get(_GENERATION, -1) < self._generation
        if stale or dbapi_connection.driver_connection.is_closed():
            raise DisconnectionError("the server closed this connection")

    def _lost(self) -> None:
        """The server went away: every connection made before now is replaced at checkout."""
        self._generation += 1

    def _driver(self) -> Driver:
        import asyncpg  # type: ignore[import-untyped]

        lost = (
            OSError,
            asyncpg.InterfaceError,
            asyncpg.InternalClientError,
            asyncpg.PostgresConnectionError,
            asyncpg.exceptions.OperatorInterventionError,  # the server shutting down
        )
        return Driver(
            errors=(asyncpg.PostgresError, *lost),
            lost=lost,
            sizes=MAX_HELD,
            relax=RELAX,
            fetch=_fetch,
            on_lost=self._lost,
        )

    @property
    def notifies(self) -> bool:
        return True

    async def listen(self, wake: Wake, state: ListenerState | None = None) -> None:
        await notify.listen(self.engine, wake, ignore=self.name, state=state)

    @property
    def finished_poll(self) -> float | None:
        return None  # finishes are notified

    def watch_finished(self, bus: FinishedBus, job_id: int) -> AbstractAsyncContextManager[None]:
        return self._finished.watching(self.engine, bus, job_id)

    async def _install(self, conn: AsyncConnection) -> None:
        await notify.install_trigger(conn)

    async def _single(self, conn: AsyncConnection) -> None:
        await conn.execution_options(isolation_level="AUTOCOMMIT")

    async def _lock_schema(self, conn: AsyncConnection) -> None:
        await _advisory_lock(conn, SCHEMA_LOCK)

    def upsert(self, table: Table) -> Any:
        return postgresql.insert(table)

    _begin = "BEGIN ISOLATION LEVEL READ COMMITTED"

    async def _fetch_claim(self, sql: str, args: list[Any], locked: bool) -> list[Any]:
        """``locked``: the claim considers concurrency keys, so it holds the keyed-claim lock.

        Without it two instances could each lock a different job of one key, both seeing the
        key free (say, claiming different queues or orders). Every claim of an instance that
        has a keyed definition takes it, so a key's lease is committed before the next keyed
        claim's statement takes its snapshot.
        """
        if not locked:
            return await self.held.fetch(sql, args, relaxed=True)

        async def claim_locked(driver: Any) -> list[Sequence[Any]]:
            async with driver.transaction(isolation="read_committed"):
                await driver.execute("SELECT pg_advisory_xact_lock($1)", CLAIM_LOCK)
                return list(await driver.fetch(sql, *args))

        async with self.held.connection(relaxed=True) as driver:
            return await unbroken(claim_locked(driver))

    def insert_sql(self, codec: Codec) -> PostgresInserts:
        return PostgresInserts(codec)

    def _update_sql(self, names: tuple[str, ...]) -> str:
        return update_owned_sql(names, "$")

    def _ids(self, ids: Any) -> Any:
        return list(ids)

    def _new_logs(self, changed: Mapping[int, list[dict[str, Any]]]) -> list[Any]:
        return [list(changed), [json.dumps(v) for v in changed.values()]]

    def _outputs(self, outputs: Mapping[int, Any]) -> list[Any]:
        return [[json.dumps(v) for v in outputs.values()]]  # in the order of the ids ($1)

    def _tokens(self, tokens: Mapping[int, str]) -> Any:
        return list(tokens.values())  # in the order of the ids ($1)

    def _logs_args(self, ids: Any, tokens: Any, live_after: Any, now: Any, logs: Any) -> list[Any]:
        return [ids, tokens, live_after, now, [json.dumps(log) for log in logs]]

    _delete_sql = notify.finished_notify(
        f"DELETE FROM asyncjobs_jobs USING {_TOKENS} WHERE {_OWNED}"
    )
    # A job whose log changed gets its new log in the same statement, and every job its output.
    _complete_sql = notify.finished_notify(
        "UPDATE asyncjobs_jobs SET completed_at = $4, processing_until = NULL, "
        "processing_token = NULL, total_tried = total_tried + 1, updated_at = $4, "
        "log = COALESCE((SELECT l.log FROM unnest($5::bigint[], $6::jsonb[]) AS l(id, log) "
        "WHERE l.id = asyncjobs_jobs.id), asyncjobs_jobs.log), "
        "output = (SELECT o.output FROM unnest($1::bigint[], $7::jsonb[]) AS o(id, output) "
        f"WHERE o.id = asyncjobs_jobs.id) FROM {_TOKENS} WHERE {_OWNED}"
    )
    # Step logs of several jobs: $1 ids, $2 their tokens, $3 live_after, $4 now, $5 logs.
    _logs_sql = (
        "UPDATE asyncjobs_jobs SET log = l.log, updated_at = $4 FROM unnest($1::bigint[], "
        "$2::text[], $5::jsonb[]) AS l(id, token, log) WHERE asyncjobs_jobs.id = l.id "
        "AND processing_token = l.token AND processing_until > $3 RETURNING asyncjobs_jobs.id"
    )


class PostgresInserts(BackendInserts):
    """Inserts as one ``unnest`` of column arrays, whatever the number of rows; key lists as
    arrays; superseding keys held by advisory locks."""

    def single(self, rows: Sequence[Row], supersede: Sequence[str]) -> bool:
        return not supersede and not keyed(rows)

    def lock(self, namespace: str, keys: Sequence[str]) -> list[Statement]:
        """Hold each of ``keys`` until the transaction ends, so that per-key decisions (which
        pending job a superseding insert drops) see every earlier decision committed; in one
        order, so that two callers never deadlock."""
        locks = sorted({advisory_key(namespace, key) for key in keys})
        return [("SELECT pg_advisory_xact_lock($1)", [lock]) for lock in locks]

    def insert(self, rows: Sequence[Row]) -> list[Insert]:
        if not rows:
            return []
        shared, args = [], []
        for name in INSERT_COLUMNS:
            values = self.codec.values(name, rows)
            one = _shared(name, values)
            shared.append(one)
            args.append(
                self.codec.encode(name, values[0]) if one else self.codec.encoded(name, values)
            )
        return [(_insert_unnest(self.codec.dialect, tuple(shared)), args, rows)]

    def inserted(self, rows: Sequence[Row], fetched: Sequence[Sequence[Any]]) -> list[Row]:
        return self._returned.rows(rows, fetched)

    def holders(self, keys: Sequence[str]) -> Statement:
        sql = (
            f"SELECT {RETURNING_ALL} FROM asyncjobs_jobs "
            f"WHERE idempotency_key = ANY($1::text[]) AND {_UNFINISHED}"
        )
        return sql, [list(keys)]

    def supersede(self, keys: Sequence[str], keep: Sequence[int], now: datetime) -> Statement:
        return _SUPERSEDE, [list(keys), list(keep), self.codec.time(now)]


_SUPERSEDE = (
    "DELETE FROM asyncjobs_jobs WHERE concurrency_key = ANY($1::text[]) "
    f"AND id <> ALL($2::bigint[]) AND {_UNFINISHED} "
    "AND (processing_until IS NULL OR processing_until <= $3) AND total_tried = 0 AND log IS NULL"
)


def advisory_key(namespace: str, key: str) -> int:
    """A stable signed 64-bit advisory lock id for ``key`` (the same in every process)."""
    digest = hashlib.blake2b(f"{namespace}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def _advisory_lock(conn: AsyncConnection, key: int) -> None:
    await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


async def _fetch(driver: Any, sql: str, args: Sequence[Any]) -> list[Sequence[Any]]:
    return list(await driver.fetch(sql, *args))


def _shared(name: str, values: list[Any]) -> bool:
    """Whether every row inserts the same value in column ``name``: then it is sent once.

    A JSON value only when all are null or empty objects: other equal JSON values may still
    differ in their text (``1`` and ``1.0``, ``true`` and ``1``).
    """
    first = values[0]
    if name == "input" or (name in _JSON_COLUMNS and first is not None and first != {}):
        return False  # the input is always an array: it counts the rows
    return values.count(first) == len(values)


_JSON_COLUMNS = frozenset(name for name in INSERT_COLUMNS if isinstance(jobs.c[name].type, JSON))


@functools.lru_cache(maxsize=64)
def _insert_unnest(dialect: Dialect, shared: tuple[bool, ...]) -> str:
    """One statement for any number of rows: a column whose rows all insert one value is one
    parameter, every other one an array parameter of ``unnest``, each cast to the column's
    own type (without a length: a cast to ``VARCHAR(n)`` would truncate)."""
    casts = [
        re.sub(r"\(\d+\)", "", jobs.c[name].type.dialect_impl(dialect).compile(dialect=dialect))
        for name in INSERT_COLUMNS
    ]
    pairs = list(enumerate(zip(casts, shared, strict=True), start=1))
    arrays = [f"${i}::{cast}[]" for i, (cast, one) in pairs if not one]
    names = [f"c{i}" for i, one in enumerate(shared, start=1) if not one]
    values = [f"${i}::{cast}" if one else f"u.c{i}" for i, (cast, one) in pairs]
    return (
        f"INSERT INTO asyncjobs_jobs ({COLUMN_LIST}) SELECT {', '.join(values)} "
        f"FROM unnest({', '.join(arrays)}) AS u({', '.join(names)}) "
        f"ON CONFLICT (idempotency_key) WHERE {_UNFINISHED} DO NOTHING RETURNING {RETURNING}"
    )
