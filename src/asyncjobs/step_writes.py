"""Group commit of step logs: steps of different jobs that land together share one statement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from asyncjobs.errors import ConnectionLost, WriteRefused
from asyncjobs.storage import Store

if TYPE_CHECKING:
    from asyncjobs.attempt import Attempt


@dataclass(eq=False)
class _Pending:
    """One job's log waiting for a write, and what became of it."""

    attempt: Attempt
    log: list[dict[str, Any]]
    done: anyio.Event = field(default_factory=anyio.Event)
    owned: bool = False
    error: Exception | None = None

    def settle(self, outcome: bool | Exception) -> None:
        if isinstance(outcome, Exception):
            self.error = outcome
        else:
            self.owned = outcome
        self.done.set()


class StepWrites:
    """Writes each job's new step log, fenced by that job's own lease token.

    The first job to write sends its log with those of every job that lands before its
    statement goes (one loop turn); logs landing during that write go together in the next.
    A write that fails for a reason other than a lost connection is retried job by job, so
    only the job whose own log cannot be stored gets the error.
    """

    def __init__(self, store: Store, clock: Callable[[], datetime], buffer: timedelta) -> None:
        self.store, self.clock, self.buffer = store, clock, buffer
        self._waiting: list[_Pending] = []
        self._flushing = False

    async def write(self, attempt: Attempt, log: list[dict[str, Any]]) -> bool:
        """Store ``log`` as ``attempt``'s step log; whether its lease still held.

        Raises:
            ConnectionLost: the database could not be reached.
            WriteRefused: this job's log could not be stored.
        """
        pending = _Pending(attempt, log)
        self._waiting.append(pending)
        if self._flushing:
            await pending.done.wait()
        else:
            await self._flush()
        if pending.error is not None:
            raise pending.error
        return pending.owned

    async def _flush(self) -> None:
        self._flushing = True
        batch: list[_Pending] = []
        try:
            await anyio.lowlevel.checkpoint()  # let the steps landing now join this write
            while self._waiting:
                batch, self._waiting = _one_per_job(self._waiting)
                await self._write(batch)
        finally:
            self._flushing = False
            for pending in [*batch, *self._waiting]:  # only when cancelled or failing
                if not pending.done.is_set():
                    pending.settle(False)  # its write is in doubt: the attempt stops
            self._waiting = []

    async def _write(self, batch: list[_Pending]) -> None:
        now = self.clock()
        try:
            owned = await self.store.write_logs(
                {p.attempt.id: p.log for p in batch},
                {p.attempt.id: p.attempt.token for p in batch},
                live_after=now + self.buffer,
                now=now,
            )
        except ConnectionLost as exc:
            for pending in batch:
                pending.settle(exc)
            return
        except Exception as exc:
            await self._refused(batch, exc)
            return
        for pending in batch:
            pending.settle(pending.attempt.id in owned)

    async def _refused(self, batch: list[_Pending], exc: Exception) -> None:
        if len(batch) > 1:
            for pending in batch:
                await self._write([pending])
            return
        refused = WriteRefused(str(exc))
        refused.__cause__ = exc
        batch[0].settle(refused)


def _one_per_job(waiting: list[_Pending]) -> tuple[list[_Pending], list[_Pending]]:
    """The logs to write now, and later ones of a job already among them."""
    batch: dict[int, _Pending] = {}
    later: list[_Pending] = []
    for pending in waiting:
        if pending.attempt.id in batch:
            later.append(pending)
        else:
            batch[pending.attempt.id] = pending
    return list(batch.values()), later
