"""The one way jobs are inserted, on whatever connection holds the transaction (the store's
held one, a caller's, a schedule tick's): superseding keys locked, rows inserted with a taken
idempotency key skipped, the keys' holders read, never-started jobs of superseding keys
dropped. Each backend writes the statements in its driver's SQL (``InsertSql``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import JSON

from asyncjobs.errors import StorageError
from asyncjobs.storage.base import Row
from asyncjobs.storage.codec import Codec
from asyncjobs.storage.tables import COLUMNS, INSERT_COLUMNS, UTCDateTime, jobs

Statement = tuple[str, Sequence[Any]]
Insert = tuple[str, Sequence[Any], Sequence[Row]]  # a statement and the rows it inserts
Fetch = Callable[[str, Sequence[Any]], Awaitable[Sequence[Sequence[Any]]]]
# A holder that finishes between a skipped insert and the read of it frees its key, and the
# insert is tried again; this bounds how often in a row that may happen.
MAX_ROUNDS = 100


class InsertSql(Protocol):
    """The statements one backend sends to insert jobs, in its driver's SQL."""

    def lock(self, namespace: str, keys: Sequence[str]) -> list[Statement]:
        """Statements holding each of ``keys`` until the transaction ends (none where the
        write lock already serialises writers)."""
        ...

    def insert(self, rows: Sequence[Row]) -> list[Insert]:
        """``rows`` inserted, skipping those whose idempotency key an unfinished job holds:
        each statement with the rows it inserts."""
        ...

    def inserted(self, rows: Sequence[Row], fetched: Sequence[Sequence[Any]]) -> list[Row]:
        """The stored rows of ``rows`` (every column) from what their statement returned."""
        ...

    def holders(self, keys: Sequence[str]) -> Statement:
        """The unfinished jobs holding ``keys``, every column."""
        ...

    def supersede(self, keys: Sequence[str], keep: Sequence[int], now: datetime) -> Statement:
        """Drop never-started, unfinished jobs of the concurrency ``keys`` but ``keep``."""
        ...

    def decode(self, values: Sequence[Any]) -> Row:
        """A returned row of every column, as SQLAlchemy reads it."""
        ...

    def single(self, rows: Sequence[Row], supersede: Sequence[str]) -> bool:
        """Whether inserting ``rows`` is one statement (atomic without BEGIN/COMMIT)."""
        ...


async def insert(
    fetch: Fetch, sql: InsertSql, rows: Sequence[Row], supersede: Sequence[str], now: datetime
) -> list[Row]:
    """Insert ``rows`` in the transaction ``fetch`` runs in; one stored row per row, in order.

    A row whose idempotency key an unfinished job holds (a job stored before, or an earlier
    row of ``rows``) is not inserted: its place gets the holder. Of each superseding key only
    the newest inserted job is kept, so a batch that queues one key twice behaves like two
    ``queue()`` calls in a row; a row answered by a holder supersedes nothing.
    """
    for statement in sql.lock("supersede", supersede):
        await fetch(*statement)
    inserted: list[Row] = []
    if any(held_key(row) for row in rows):
        first = _first_of_each_key(rows)
        stored = await _stored(fetch, sql, rows, sorted(set(first.values())), inserted)
        result = [stored[first[index]] for index in range(len(rows))]
    else:  # nothing to skip: the rows come back in insertion (id) order
        result = inserted = await _inserted(fetch, sql, rows)
    await _supersede(fetch, sql, inserted, supersede, now)
    return result


def held_key(row: Row) -> str | None:
    """The idempotency key ``row`` holds once inserted (a job stored finished holds none)."""
    return None if row.get("has_error") or row.get("completed_at") else row.get("idempotency_key")


def _first_of_each_key(rows: Sequence[Row]) -> dict[int, int]:
    """For each row, the index of the first row holding its key (itself when it has none)."""
    first: dict[int, int] = {}
    seen: dict[str, int] = {}
    for index, row in enumerate(rows):
        key = held_key(row)
        first[index] = index if key is None else seen.setdefault(key, index)
    return first


async def _stored(
    fetch: Fetch, sql: InsertSql, rows: Sequence[Row], pending: list[int], inserted: list[Row]
) -> dict[int, Row]:
    """The row stored for each of ``pending``: inserted (also added to ``inserted``), or the
    holder of its key."""
    stored: dict[int, Row] = {}
    for _ in range(MAX_ROUNDS):
        new = await _inserted(fetch, sql, [rows[index] for index in pending])
        inserted += new
        skipped = _place(stored, rows, pending, new)
        keys = [rows[index]["idempotency_key"] for index in skipped]
        holders = await _holders(fetch, sql, keys) if keys else {}
        for index in skipped:
            holder = holders.get(rows[index]["idempotency_key"])
            if holder is not None:
                stored[index] = holder
        pending = [index for index in skipped if index not in stored]
        if not pending:
            return stored
    raise StorageError(f"queue: idempotency keys changed hands {MAX_ROUNDS} times; try again")


def _place(
    stored: dict[int, Row], rows: Sequence[Row], pending: list[int], inserted: list[Row]
) -> list[int]:
    """Put each inserted row in its row's place (rows without a key come back in order,
    keyed ones by their key); return the pending rows an existing holder skipped."""
    by_key = {key: row for row in inserted if (key := held_key(row)) is not None}
    plain = iter([row for row in inserted if held_key(row) is None])
    skipped = []
    for index in pending:
        key = held_key(rows[index])
        found = next(plain) if key is None else by_key.get(key)
        if found is None:
            skipped.append(index)
        else:
            stored[index] = found
    return skipped


async def _inserted(fetch: Fetch, sql: InsertSql, rows: Sequence[Row]) -> list[Row]:
    """The rows the insert statements stored, in insertion (id) order."""
    inserted = []
    for statement, args, chunk in sql.insert(rows):
        inserted += sql.inserted(chunk, await fetch(statement, args))
    inserted.sort(key=lambda row: row["id"])
    return inserted


async def _holders(fetch: Fetch, sql: InsertSql, keys: Sequence[str]) -> dict[str, Row]:
    rows = [sql.decode(values) for values in await fetch(*sql.holders(keys))]
    return {row["idempotency_key"]: row for row in rows}


async def _supersede(
    fetch: Fetch, sql: InsertSql, inserted: Sequence[Row], supersede: Sequence[str], now: datetime
) -> None:
    if not supersede:
        return
    wanted = set(supersede)
    newest = {
        row["concurrency_key"]: row["id"]
        for row in sorted(inserted, key=lambda row: row["id"])
        if row["concurrency_key"] in wanted
    }
    if newest:
        await fetch(*sql.supersede(list(newest), list(newest.values()), now))


class Returned:
    """Stored rows rebuilt from what an insert returns (``RETURNING``): the id and the JSON
    values as stored (``jsonb`` may change a value's form: key order, ``1e2`` read back as
    ``100``); every other column is what was sent, times in UTC, as they read back."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._blank = {name: codec.default(name) for name in COLUMNS}  # what a row leaves out

    def rows(self, rows: Sequence[Row], fetched: Sequence[Sequence[Any]]) -> list[Row]:
        """The stored rows of ``rows``, in id order. A row whose idempotency key was taken
        returned nothing: the returned rows are matched in order, by key."""
        returned = sorted(fetched, key=lambda values: int(values[0]))
        stored: list[Row] = []
        for row in rows:
            if len(stored) == len(returned):
                break
            values = returned[len(stored)]
            sent = (bool(row.get("has_error")), row.get("idempotency_key"))
            if (bool(values[1]), values[2]) == sent:
                stored.append(self._stored(row, values))
        return stored

    def _stored(self, row: Row, values: Sequence[Any]) -> Row:
        stored = self._blank | row
        stored["id"] = values[0]
        for name, value in zip(_RETURNED_JSON, values[3:], strict=True):
            stored[name] = None if value is None else self.codec.decode(name, value)
        for name in _TIME_COLUMNS:
            if stored[name] is not None:
                stored[name] = stored[name].astimezone(UTC)
        return stored


_RETURNED_JSON = tuple(name for name in INSERT_COLUMNS if isinstance(jobs.c[name].type, JSON))
_TIME_COLUMNS = tuple(name for name in COLUMNS if isinstance(jobs.c[name].type, UTCDateTime))
RETURNING = ", ".join(
    f'"{name}"' for name in ("id", "has_error", "idempotency_key", *_RETURNED_JSON)
)


class BackendInserts:
    """What both backends' ``InsertSql`` share: the codec, and rows rebuilt from ``RETURNING``."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self._returned = Returned(codec)

    def decode(self, values: Sequence[Any]) -> Row:
        return self.codec.decode_row(values)


def keyed(rows: Sequence[Row]) -> bool:
    """Whether any of ``rows`` has an idempotency key (its insert may be skipped)."""
    return any(row.get("idempotency_key") for row in rows)
