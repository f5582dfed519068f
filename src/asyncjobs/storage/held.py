"""Driver connections held out of the engine's pool for the statements every batch sends.

A drained job costs two statements, and SQLAlchemy's async execution path around each (pool
checkout and return, execution context, result processing, and on SQLite five thread hops)
took four times what the database needed. The backends therefore send claims, step writes,
completions and inserts as their driver's own SQL on connections that stay checked out of
the pool (autocommit, one round trip on asyncpg). This module keeps those connections: it
hands one out per statement, keeps it after a refused statement, replaces it after a broken
one, and gives them all back when the store closes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection, StaticPool

from asyncjobs.errors import ConnectionLost
from asyncjobs.storage.errors import storage_error

T = TypeVar("T")
Errors = tuple[type[BaseException], ...]
STATEMENT_GRACE = 60.0  # seconds a held statement may run, cancelled or not


@dataclass(frozen=True)
class Driver:
    """What the held connections need to know of one backend's driver.

    ``errors``: the driver's exceptions (storage errors to the caller); ``lost``: those of
    them that mean the connection is gone. ``sizes``: how many connections may be held, per
    kind (``True``: relaxed ones, which commit without waiting for the WAL flush);
    ``relax``: the statement that makes a connection relaxed (``None``: no such kind).
    ``fetch(driver, sql, args)``: one statement's rows. ``on_lost``: called when the server
    went away, so that the pool replaces its older connections too.
    """

    errors: Errors
    lost: Errors
    sizes: Mapping[bool, int]
    relax: str | None
    fetch: Callable[[Any, str, Sequence[Any]], Awaitable[list[Sequence[Any]]]]
    on_lost: Callable[[], None] = lambda: None


class _Held:
    def __init__(
        self, conn: AsyncConnection, pooled: PoolProxiedConnection, *, relaxed: bool
    ) -> None:
        self.conn, self.pooled, self.relaxed = conn, pooled, relaxed
        self.driver: Any = pooled.driver_connection


class HeldConnections:
    """Connections checked out of ``engine``'s pool and kept for direct driver calls."""

    def __init__(self, engine: AsyncEngine, driver: Driver) -> None:
        self.engine, self.driver = engine, driver
        # Idle held connections; ``True``: relaxed ones (claims).
        self._idle: dict[bool, list[_Held]] = {False: [], True: []}
        # Taken without a checkpoint when free: the driver call that follows yields anyway.
        self._slots = {
            relaxed: anyio.Semaphore(count, fast_acquire=True)
            for relaxed, count in driver.sizes.items()
        }
        # SQLite's ``:memory:`` database lives in the one connection its StaticPool shares.
        self._shared = isinstance(engine.sync_engine.pool, StaticPool)
        self._closed = False

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, {False: [], True: []}
        for held in [*idle[False], *idle[True]]:
            await _release(held)

    async def fetch(
        self, sql: str, args: Sequence[Any], *, relaxed: bool = False, fenced: bool = False
    ) -> list[Sequence[Any]]:
        """Run one statement in autocommit; its rows.

        ``relaxed``: the commit does not wait for the WAL flush (where the backend has that).
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
        async with self.connection(relaxed=relaxed) as driver:
            return list(await unbroken(self.driver.fetch(driver, sql, args)))

    @asynccontextmanager
    async def connection(self, *, relaxed: bool = False) -> AsyncIterator[Any]:
        """One held driver connection for one call; a failure in it is a storage error."""
        relaxed = relaxed and self.driver.relax is not None
        async with self._slots[relaxed]:
            held = await self._take(relaxed)
            try:
                yield held.driver
            except BaseException as exc:
                await self._failed(held, exc)
                raise
            if self._closed:  # the store has closed and disposed of its pool meanwhile
                with anyio.CancelScope(shield=True):
                    await _discard(held)
            else:
                self._idle[relaxed].append(held)

    async def _failed(self, held: _Held, exc: BaseException) -> None:
        refused = isinstance(exc, self.driver.errors)
        lost = isinstance(exc, self.driver.lost)
        if self._shared or (refused and not lost):
            # A refused statement leaves its connection as it was; the shared in-memory
            # SQLite connection is the database itself (aiosqlite queues its calls).
            self._idle[held.relaxed].append(held)
        else:
            await self._retire(held, lost=lost)
        if lost:
            raise storage_error("statement", exc, ConnectionLost) from None
        if refused:
            raise storage_error("statement", exc) from None

    async def _take(self, relaxed: bool) -> _Held:
        """An idle held connection, or a new one when there is none or the server closed it.

        A connection the server closed while it sat idle (a restart, ``pg_terminate_backend``)
        is known to be closed before anything is sent on it, so it is replaced at no risk:
        this is what lets the first statement after a restart succeed.
        """
        idle = self._idle[relaxed]
        if idle and not self._shared and _closed(idle[-1].driver):
            await self._retire(idle.pop(), lost=True)  # and every other idle one
            idle = self._idle[relaxed]
        return idle.pop() if idle else await self._borrow(relaxed)

    async def _retire(self, held: _Held, *, lost: bool) -> None:
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
            self.driver.on_lost()
        with anyio.CancelScope(shield=True):
            for connection in stale:
                await _discard(connection)

    async def _borrow(self, relaxed: bool) -> _Held:
        failed: Errors = (SQLAlchemyError, *self.driver.errors)
        try:
            return await unbroken(self._connect(relaxed))
        except failed as exc:
            raise ConnectionLost(f"could not connect to the database: {exc}") from exc

    async def _connect(self, relaxed: bool) -> _Held:
        conn = await self.engine.connect()
        try:
            held = _Held(conn, await conn.get_raw_connection(), relaxed=relaxed)
            assert held.driver is not None
            if relaxed:
                await held.driver.execute(self.driver.relax)
            return held
        except BaseException:
            await conn.close()
            raise


async def unbroken(call: Awaitable[T]) -> T:
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
