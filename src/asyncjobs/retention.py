"""How long finished jobs are kept: ``Retention``, and pruning the ones past it in batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncjobs import logs
from asyncjobs.checks import Seconds, seconds
from asyncjobs.storage import Store

BATCH = 1_000  # rows one DELETE removes at most, so no statement holds locks for long
TICK_BATCHES = 10  # batches an autoRun tick deletes at most; prune() clears any backlog
INTERVAL = timedelta(minutes=1)  # autoRun ticks of one instance prune at most this often
KINDS = ("completed", "failed", "cancelled")


@dataclass(frozen=True, kw_only=True)
class Retention:
    """How long finished jobs are kept, by how they finished; ``None`` keeps them for good.

    A duration is seconds or a ``timedelta``, counted from ``completed_at`` for completed jobs
    and from ``updated_at`` (when they failed for good or were cancelled) for the others.
    """

    completed: Seconds | None = None
    failed: Seconds | None = None
    cancelled: Seconds | None = None

    def __post_init__(self) -> None:
        for kind in KINDS:
            _check(getattr(self, kind), kind)

    def cutoffs(self, now: datetime) -> list[tuple[str, datetime]]:
        """Each kept kind of finished job with the time before which it is deleted."""
        kept = ((kind, getattr(self, kind)) for kind in KINDS)
        return [(kind, now - timedelta(seconds=seconds(v))) for kind, v in kept if v is not None]


def _check(value: object, kind: str) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ValueError(
            f"Retention {kind} must be seconds, a timedelta or None, got {value!r:.40}"
        )
    if not (math.isfinite(seconds(value)) and seconds(value) >= 0):
        raise ValueError(f"Retention {kind} must be a duration of 0 or more, got {value!r:.40}")


async def prune(store: Store, retention: Retention, now: datetime, batches: int | None) -> int:
    """Delete finished jobs past ``retention``, ``BATCH`` rows per statement (at most
    ``batches`` statements per kind when given); the number of rows deleted."""
    total = 0
    for kind, before in retention.cutoffs(now):
        done = 0
        while batches is None or done < batches:
            deleted = await store.prune(kind, before=before, limit=BATCH)
            total, done = total + deleted, done + 1
            if deleted < BATCH:
                break
    if total:
        logs.info("Pruned %d finished jobs.", total, extra={"pruned": total})
    return total


class Pruning:
    """``prune()``, and the pruning autoRun ticks do; ``Jobs`` inherits both and sets the
    attributes declared here."""

    store: Store
    clock: Callable[[], datetime]
    retention: Retention | None = None
    _pruned_at: datetime | None = None

    async def _ready(self) -> None: ...

    async def prune(self) -> int:
        """Delete every finished job past the ``retention`` of ``Jobs(...)``, in batches of
        at most 1,000 rows; returns how many. Without a retention nothing is deleted."""
        await self._ready()
        if self.retention is None:
            return 0
        return await prune(self.store, self.retention, self.clock(), None)

    async def prune_if_due(self) -> int:
        """On an autoRun tick: prune a bounded amount, at most once a minute per instance."""
        now, last = self.clock(), self._pruned_at
        if self.retention is None or (last is not None and now - last < INTERVAL):
            return 0
        self._pruned_at = now
        return await prune(self.store, self.retention, now, TICK_BATCHES)
