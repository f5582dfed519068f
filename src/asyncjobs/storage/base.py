"""What the engine sees of storage: the ``Store`` protocol, one claim's terms, and the values
a cancellation writes. Nothing here knows a backend."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

Row = dict[str, Any]
Wake = Callable[[str, datetime | None], None]
ListenerState = Callable[[str], None]  # "listening" or "reconnecting"


class FinishedBus(Protocol):
    """Where a store announces jobs other processes finished (``asyncjobs.wake``'s)."""

    def publish(self, ids: Iterable[int]) -> None: ...

    def publish_all(self) -> None:
        """Every waiter looks again: finishes may have gone unheard."""
        ...


# Each job's full step log when it changed since the last write, else ``None``.
Log = list[dict[str, Any]]
Logs = Mapping[int, Log | None]


@dataclass(frozen=True, kw_only=True)
class Selection:
    """Which runnable jobs a run asks for: up to ``limit``, in ``order``, of one ``queue``
    (``None``: any) or one ``job_id``, matching ``where``."""

    limit: int
    order: str
    queue: str | None = None
    job_id: int | None = None
    where: Mapping[str, Any] | None = None


@dataclass(frozen=True, kw_only=True)
class Claim(Selection):
    """One claim: the selected jobs leased to ``token`` until ``until``; ``keyed``: some
    definition has a concurrency key (claims then take one job per key)."""

    now: datetime
    until: datetime
    token: str
    keyed: bool = False

    @classmethod
    def of(
        cls, selection: Selection, *, now: datetime, until: datetime, token: str, keyed: bool
    ) -> Claim:
        chosen = {field.name: getattr(selection, field.name) for field in fields(Selection)}
        return cls(**chosen, now=now, until=until, token=token, keyed=keyed)


@dataclass(frozen=True)
class ScheduledTick:
    """A schedule's tick to record as taken, with the job rows it queues; ``only_if_idle=
    (slug, queue)``: only while no scheduled job of ``slug`` on ``queue`` is unfinished."""

    key: str
    tick: datetime
    now: datetime
    rows: Sequence[Row]
    supersede: Sequence[str]
    only_if_idle: tuple[str, str] | None = None


def cancelled_error(message: str) -> dict[str, Any]:
    return {"name": "JobCancelled", "message": message, "cancelled": True}


def cancelled_values(now: datetime, message: str) -> dict[str, Any]:
    return {
        "has_error": True,
        "error": cancelled_error(message),
        "completed_at": None,
        "wait_until": None,
        "processing_until": None,
        "processing_token": None,
        "updated_at": now,
    }


class Store(Protocol):
    """The job store as the engine, the facade and the schedules use it.

    Every method is one short transaction; storage failures raise ``StorageError`` (or
    ``ConnectionLost``) with a one-line message.
    """

    url: str

    @property
    def is_open(self) -> bool: ...

    @property
    def dialect(self) -> str:
        """The database's kind: ``"sqlite"`` or ``"postgresql"``."""
        ...

    def read(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A connection for one read statement, outside an explicit transaction."""
        ...

    def write(self, *, single: bool = False) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction (``single``: one statement, atomic by itself)."""
        ...

    @property
    def notifies(self) -> bool:
        """Whether inserts wake listeners in other processes."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def listen(self, wake: Wake, state: ListenerState | None = None) -> None:
        """Call ``wake(queue, due)`` whenever another process queues jobs, until cancelled;
        ``state`` hears ``"listening"`` once notifications arrive and ``"reconnecting"``
        while their connection is being re-established."""
        ...

    @property
    def finished_poll(self) -> float | None:
        """Seconds between looks for jobs other processes finished; ``None``: they notify."""
        ...

    def watch_finished(self, bus: FinishedBus, job_id: int) -> AbstractAsyncContextManager[None]:
        """While inside, ``job_id`` finishing in another process is published on ``bus``
        (if the backend can tell)."""
        ...

    async def insert_jobs(
        self, rows: Sequence[Row], *, supersede: Sequence[str], now: datetime
    ) -> list[Row]: ...

    async def claim(self, claim: Claim) -> list[Row]: ...

    async def insert_through(
        self, conn: AsyncConnection, rows: Sequence[Row], supersede: Sequence[str], now: datetime
    ) -> list[Row]:
        """Insert ``rows`` through ``conn`` (a caller's transaction) as ``insert_jobs`` does."""
        ...

    async def update_owned(
        self, job_id: int, token: str, *, live_after: datetime, values: Mapping[str, Any]
    ) -> bool: ...

    async def finish_owned(
        self,
        logs: Logs,
        token: str | Mapping[int, str],
        *,
        live_after: datetime,
        now: datetime,
        delete: bool,
        outputs: Mapping[int, Any] | None = None,
    ) -> set[int]: ...

    async def write_logs(
        self,
        logs: Mapping[int, Log],
        tokens: Mapping[int, str],
        *,
        live_after: datetime,
        now: datetime,
    ) -> set[int]:
        """Each job's new step log, where its token in ``tokens`` still holds the lease."""
        ...

    async def renew(
        self, ids: Sequence[int], token: str, *, live_after: datetime, until: datetime
    ) -> set[int]: ...

    async def owned(self, ids: Sequence[int], token: str) -> set[int]: ...

    async def release(self, ids: Sequence[int], token: str) -> None: ...

    async def cancel(
        self, where: Mapping[str, Any] | None, *, queue: str | None, now: datetime, message: str
    ) -> list[int]: ...

    async def retry(self, job_id: int, *, now: datetime) -> Row | None: ...

    async def prune(self, kind: str, *, before: datetime, limit: int) -> int: ...

    async def signal(
        self, job_id: int, topic: str, payload: Any, *, now: datetime
    ) -> tuple[str, datetime | None] | None: ...

    async def signals(self, job_id: int, topic: str) -> list[tuple[int, Any]]: ...

    async def suspend(
        self,
        job_id: int,
        token: str,
        *,
        live_after: datetime,
        values: Callable[[int | None], Mapping[str, Any]],
        check: tuple[str, frozenset[int]] | None = None,
        child: Row | None = None,
    ) -> tuple[bool, int | None] | None: ...

    async def delete_finished(self, ids: Sequence[int]) -> None: ...

    async def get(self, job_id: int) -> Row | None: ...

    async def find(
        self, where: Mapping[str, Any] | None, *, limit: int, order: str, now: datetime
    ) -> list[Row]: ...

    async def last_ticks(self, keys: Sequence[str]) -> dict[str, datetime]: ...

    async def count_unfinished_scheduled(self, *, slug: str, queue: str) -> int: ...

    async def enqueue_tick(self, tick: ScheduledTick) -> list[Row] | None: ...
