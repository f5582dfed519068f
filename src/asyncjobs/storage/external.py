"""Jobs inserted through the caller's own SQLAlchemy connection or session, inside its open
transaction, and a callback run once that transaction commits.

The caller commits or rolls back; nothing here does either. On PostgreSQL the insert trigger's
NOTIFY is delivered by that commit (and dropped by a rollback), so other processes hear of the
jobs exactly when they become visible.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from asyncjobs.storage.base import Row, Store
from asyncjobs.storage.errors import storage_error
from asyncjobs.storage.identity import url_identity
from asyncjobs.storage.sqlite import BUSY_TIMEOUT_MS as SQLITE_BUSY_TIMEOUT_MS
from asyncjobs.storage.tables import jobs

Caller = AsyncConnection | AsyncSession
_BUSY_SET = "asyncjobs_busy_timeout"  # marks a caller's SQLite connection already configured
_with_tables: weakref.WeakSet[Engine] = weakref.WeakSet()  # engines known to have our tables
_pending: weakref.WeakKeyDictionary[Any, list[Callable[[], None]]] = weakref.WeakKeyDictionary()


def check_caller(caller: Any, url: str) -> None:
    """Refuse a ``connection=`` that is not on asyncjobs' own database (no I/O).

    Raises:
        TypeError: ``caller`` is neither an ``AsyncConnection`` nor an ``AsyncSession``.
        ValueError: it is on another dialect or another database, naming both.
    """
    engine = caller_engine(caller)
    ours, theirs = make_url(url), engine.url
    if theirs.get_backend_name() != ours.get_backend_name():
        raise ValueError(
            f"connection= is a {theirs.get_backend_name()} connection, but asyncjobs stores "
            f"its jobs in {ours.get_backend_name()}: it must be on asyncjobs' own database"
        )
    if theirs.get_driver_name() != ours.get_driver_name():
        raise ValueError(
            f"connection= uses the {theirs.get_driver_name()} driver, but asyncjobs' database "
            f"URL uses {ours.get_driver_name()}: connect with the same driver"
        )
    mine = url_identity(url)
    if mine is None or mine != url_identity(theirs.render_as_string(hide_password=False)):
        raise ValueError(
            f"connection= is on database {_shown(theirs)}, but asyncjobs uses {_shown(ours)}: "
            "it must be on asyncjobs' own database (an in-memory database cannot be shared)"
        )


def caller_engine(caller: Any) -> Engine:
    """The sync engine behind an ``AsyncConnection`` or ``AsyncSession``."""
    if isinstance(caller, AsyncConnection):
        return caller.sync_engine
    if isinstance(caller, AsyncSession):
        try:
            return caller.get_bind().engine
        except SQLAlchemyError:
            raise ValueError("connection= is an AsyncSession bound to no engine") from None
    raise TypeError(
        "connection= takes a SQLAlchemy AsyncConnection or AsyncSession, "
        f"got {type(caller).__name__}"
    )


async def insert_through(
    store: Store, caller: Caller, rows: Sequence[Row], supersede: Sequence[str], now: datetime
) -> list[Row]:
    """Insert ``rows`` inside ``caller``'s current transaction (begun if none is open).

    The same statements as ``Store.insert_jobs``: superseding keys are locked until that
    transaction ends, and a taken idempotency key gets its holder.

    Raises:
        ValueError: the database has no asyncjobs tables; nothing is written.
        StorageError: the database refused the statements.
    """
    try:
        conn = await caller.connection() if isinstance(caller, AsyncSession) else caller
        await _check_tables(conn)
        await _wait_for_locks(conn)
        return await store.insert_through(conn, rows, supersede, now)
    except SQLAlchemyError as exc:
        raise storage_error("queue (connection=)", exc) from None


async def _check_tables(conn: AsyncConnection) -> None:
    engine = conn.sync_engine
    if engine in _with_tables:
        return
    if not await conn.run_sync(lambda sync: inspect(sync).has_table(jobs.name)):
        raise ValueError(
            f"connection= is on database {_shown(engine.url)}, which has no asyncjobs tables: "
            "start a Jobs on it first (it creates them)"
        )
    _with_tables.add(engine)


async def _wait_for_locks(conn: AsyncConnection) -> None:
    """On SQLite, let the caller's connection wait for asyncjobs' writers as long as they wait
    for it, instead of failing with ``database is locked`` after the driver's 5 s."""
    if conn.dialect.name != "sqlite":
        return
    raw = await conn.get_raw_connection()
    if raw.info.get(_BUSY_SET):
        return
    current = (await conn.execute(text("PRAGMA busy_timeout"))).scalar() or 0
    if current < SQLITE_BUSY_TIMEOUT_MS:
        await conn.execute(text(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))
    raw.info[_BUSY_SET] = True


def after_commit(caller: Caller, callback: Callable[[], None]) -> None:
    """Call ``callback`` once ``caller``'s current transaction commits; never after a rollback.

    An ``AsyncSession`` calls it after the database's commit (``after_commit`` of the
    outermost transaction). An ``AsyncConnection``'s ``commit`` event fires as the COMMIT is
    sent: a runner woken then waits for SQLite's write lock, which that commit releases; on
    PostgreSQL the NOTIFY the commit delivers wakes the listeners again.
    """
    target: Session | Connection | None = (
        caller.sync_session if isinstance(caller, AsyncSession) else caller.sync_connection
    )
    if target is None:  # closed since the insert: nothing it wrote can commit now
        return
    callbacks = _pending.get(target)
    if callbacks is None:
        callbacks = _pending[target] = []
        _listen(target)
    callbacks.append(callback)


def _listen(target: Session | Connection) -> None:
    """One pair of listeners per session or connection, for its whole life: a listener
    cannot remove itself while SQLAlchemy runs the listeners of that event."""
    if isinstance(target, Session):
        event.listen(target, "after_commit", _session_committed)
        event.listen(target, "after_transaction_end", _session_ended)
    else:
        event.listen(target, "commit", _run)
        event.listen(target, "rollback", _drop)


def _session_committed(session: Session) -> None:
    if not session.in_nested_transaction():  # a savepoint's release commits nothing yet
        _run(session)


def _session_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back, closed, or after its commit ran them
        _drop(session)


def _run(target: Any) -> None:
    for callback in _pending.get(target, []):
        callback()
    _drop(target)


def _drop(target: Any) -> None:
    callbacks = _pending.get(target)
    if callbacks:
        callbacks.clear()


def _shown(url: Any) -> str:
    return repr(make_url(url).render_as_string(hide_password=True))
