"""What the engine sees of storage: the ``Store`` protocol, one claim's terms, and the values
a cancellation writes. Nothing here knows a backend."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

Row = dict[str, Any]
Wake = Callable[[str, datetime | None], None]


@dataclass(frozen=True)
class Claim:
    """What one claim asks for: up to ``limit`` runnable jobs, leased to ``token`` until
    ``until``, in ``order``, of one ``queue`` or one ``job_id``, matching ``where``;
    ``keyed``: some definition has a concurrency key (claims then take one job per key)."""

    now: datetime
    until: datetime
    token: str
    limit: int
    order: str
    queue: str | None = None
    job_id: int | None = None
    where: Mapping[str, Any] | None = None
    keyed: bool = False


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

    @property
    def is_open(self) -> bool: ...

    @property
    def notifies(self) -> bool:
        """Whether inserts wake listeners in other processes."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def listen(self, wake: Wake) -> None:
        """Call ``wake(queue, due)`` whenever another process queues jobs, until cancelled."""
        ...

    async def insert_jobs(
        self, rows: Sequence[Row], *, supersede: Sequence[str], now: datetime
    ) -> list[Row]: ...

    async def claim(self, claim: Claim) -> list[Row]: ...

    async def update_owned(
        self, job_id: int, token: str, *, live_after: datetime, values: Mapping[str, Any]
    ) -> bool: ...

    async def finish_owned(
        self,
        logs: Mapping[int, list[dict[str, Any]] | None],
        token: str,
        *,
        live_after: datetime,
        now: datetime,
        delete: bool,
    ) -> set[int]: ...

    async def renew(
        self, ids: Sequence[int], token: str, *, live_after: datetime, until: datetime
    ) -> set[int]: ...

    async def owned(self, ids: Sequence[int], token: str) -> set[int]: ...

    async def release(self, ids: Sequence[int], token: str) -> None: ...

    async def cancel(
        self, where: Mapping[str, Any] | None, *, queue: str | None, now: datetime, message: str
    ) -> list[int]: ...

    async def retry(self, job_id: int, *, now: datetime) -> Row | None: ...

    async def get(self, job_id: int) -> Row | None: ...

    async def find(
        self, where: Mapping[str, Any] | None, *, limit: int, order: str, now: datetime
    ) -> list[Row]: ...

    async def last_ticks(self, keys: Sequence[str]) -> dict[str, datetime]: ...

    async def count_unfinished_scheduled(self, *, slug: str, queue: str) -> int: ...

    async def enqueue_tick(
        self,
        *,
        key: str,
        tick: datetime,
        now: datetime,
        rows: Sequence[Row],
        supersede: Sequence[str],
        only_if_idle: tuple[str, str] | None = None,
    ) -> list[Row] | None: ...
