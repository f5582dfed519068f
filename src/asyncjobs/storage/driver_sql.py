"""Jobs inserted through a caller's own DB-API cursor (Django's), inside its transaction.

The statements are SQLAlchemy's, compiled for the cursor's driver (``%s`` parameters, which
Django's cursor takes on every backend) with each value converted by its column's type, so
the rows read exactly like rows asyncjobs writes itself.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Boolean, delete, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement

from asyncjobs.errors import StorageError
from asyncjobs.storage.filters import lease_free, unfinished
from asyncjobs.storage.inserts import MAX_ROUNDS, held_key
from asyncjobs.storage.postgres import advisory_key
from asyncjobs.storage.tables import COLUMNS, UTCDateTime, jobs

Row = dict[str, Any]
Statement = tuple[str, list[Any]]
_LOCK = text("SELECT pg_advisory_xact_lock(:k)")


def insert_with_cursor(
    cursor: Any, vendor: str, rows: Sequence[Row], supersede: Sequence[str], now: datetime
) -> list[Row]:
    """Insert ``rows`` with ``cursor`` (of a ``vendor`` database: ``"sqlite"`` or
    ``"postgresql"``) as ``Store.insert_jobs`` does: never-started jobs of the ``supersede``
    keys dropped, a taken idempotency key answered by its holder. The stored rows, in order.
    Never commits."""
    dialect = _dialect(vendor)
    if dialect.name == "postgresql":  # SQLite's write lock already serialises writers
        for lock in sorted({advisory_key("supersede", key) for key in supersede}):
            cursor.execute(*_compiled(_LOCK.bindparams(k=lock), dialect))
    stored = [_stored(cursor, dialect, row) for row in rows]
    newest = {row["concurrency_key"]: row["id"] for row, new in stored if new}
    for key in supersede:
        if key in newest:
            cursor.execute(*_compiled(_superseded(key, newest[key], now), dialect))
    return [row for row, _new in stored]


def _stored(cursor: Any, dialect: Dialect, row: Row) -> tuple[Row, bool]:
    """``row`` inserted (with its id), or the holder of its idempotency key; and which."""
    key = held_key(row)
    insert = _upsert(dialect).values(row)
    if key is not None:
        insert = insert.on_conflict_do_nothing(
            index_elements=[jobs.c.idempotency_key], index_where=unfinished()
        )
    for _ in range(MAX_ROUNDS):
        cursor.execute(*_compiled(insert.returning(jobs.c.id), dialect))
        found = cursor.fetchone()
        if found is not None:
            return {**row, "id": int(found[0])}, True
        holder = select(jobs).where(jobs.c.idempotency_key == key, unfinished())
        cursor.execute(*_compiled(holder, dialect))
        values = cursor.fetchone()
        if values is not None:
            return _read(values), False
    raise StorageError(f"queue: idempotency keys changed hands {MAX_ROUNDS} times; try again")


def _read(values: Sequence[Any]) -> Row:
    """A row of every column as a Django cursor returns it: JSON as text or parsed, times as
    text or datetimes (the backend's and Django's own converters differ)."""
    row = dict(zip(COLUMNS, values, strict=True))
    for name, kind in _KINDS.items():
        value = row[name]
        if value is None:
            continue
        if kind is JSON and isinstance(value, str | bytes):
            row[name] = json.loads(value)
        elif kind is UTCDateTime:
            when = datetime.fromisoformat(value) if isinstance(value, str) else value
            row[name] = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        elif kind is Boolean:
            row[name] = bool(value)
    return row


_KINDS = {
    column.name: kind
    for column in jobs.c
    for kind in (JSON, UTCDateTime, Boolean)
    if isinstance(column.type, kind)
}


def _upsert(dialect: Dialect) -> Any:
    return (postgresql if dialect.name == "postgresql" else sqlite).insert(jobs)


def _superseded(key: str, keep: int, now: datetime) -> ClauseElement:
    """Never-started jobs of ``key`` but the newest (as ``store.insert_superseding``)."""
    return delete(jobs).where(
        jobs.c.concurrency_key == key,
        jobs.c.id != keep,
        unfinished(),
        lease_free(now),
        jobs.c.total_tried == 0,
        jobs.c.log.is_(None),
    )


@functools.cache
def _dialect(vendor: str) -> Dialect:
    if vendor == "sqlite":
        from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

        return SQLiteDialect_pysqlite(paramstyle="format")
    if vendor == "postgresql":
        from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

        return PGDialect_psycopg(paramstyle="format")  # type: ignore[no-untyped-call]
    raise ValueError(f"asyncjobs cannot store jobs through a {vendor!r} database connection")


def _compiled(statement: ClauseElement, dialect: Dialect) -> Statement:
    compiled: Any = statement.compile(dialect=dialect)  # a SQLCompiler: binds, positiontup
    params = compiled.construct_params()
    return compiled.string, [
        _bound(compiled.binds[name].type, params[name], dialect)
        for name in compiled.positiontup or ()
    ]


def _bound(type_: Any, value: Any, dialect: Dialect) -> Any:
    """``value`` as the column's type hands it to the driver (JSON text, SQLite's time text)."""
    processor = type_.dialect_impl(dialect).bind_processor(dialect)
    return value if processor is None else processor(value)
