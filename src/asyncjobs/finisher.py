"""Group commit of completions: jobs of a batch that finish together share one statement."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import anyio
import anyio.lowlevel

from asyncjobs.attempt import WRITE_GRACE, Attempt
from asyncjobs.errors import JobRunAborted
from asyncjobs.storage import Store


@dataclass
class _Waiter:
    attempt: Attempt
    done: anyio.Event = field(default_factory=anyio.Event)
    ok: bool = False
    error: BaseException | None = None


class Finisher:
    """Records successful attempts of one batch, several per fenced statement.

    The first job to finish writes; jobs finishing while that write is in flight are written
    together by the next one. Each row is still checked against the batch token and the lease.
    """

    def __init__(
        self,
        store: Store,
        token: str,
        clock: Callable[[], datetime],
        buffer: timedelta,
        *,
        delete: bool,
    ) -> None:
        self.store, self.token, self.clock, self.buffer = store, token, clock, buffer
        self.delete = delete
        self._waiting: list[_Waiter] = []
        self._flushing = False

    async def finish(self, attempt: Attempt) -> None:
        """Mark ``attempt`` completed (or delete it).

        Raises:
            JobRunAborted: the job's lease was lost or it was cancelled meanwhile.
        """
        attempt.releasing = True
        waiter = _Waiter(attempt)
        self._waiting.append(waiter)
        if self._flushing:
            await waiter.done.wait()
        else:
            await self._flush()
        if waiter.error is not None:
            raise waiter.error
        if not waiter.ok:
            raise JobRunAborted(f"job {attempt.id} can no longer be updated by this runner")

    async def _flush(self) -> None:
        self._flushing = True
        try:
            # Shielded like every job write: a commit must not be lost to a cancellation.
            with anyio.move_on_after(WRITE_GRACE, shield=True):
                await anyio.lowlevel.checkpoint()  # let siblings finishing now join this write
                while self._waiting:
                    batch, self._waiting = self._waiting, []
                    await self._write(batch)
        finally:
            self._flushing = False
            for waiter in self._waiting:  # only after a timed-out flush
                waiter.done.set()
            self._waiting = []

    async def _write(self, batch: list[_Waiter]) -> None:
        now = self.clock()
        logs = {w.attempt.id: w.attempt.unsaved_log() for w in batch}
        try:
            owned = await self.store.finish_owned(
                logs, self.token, live_after=now + self.buffer, now=now, delete=self.delete
            )
        except Exception as exc:
            for waiter in batch:
                waiter.error = exc
                waiter.done.set()
            return
        for waiter in batch:
            waiter.ok = waiter.attempt.id in owned
            if waiter.ok:
                waiter.attempt.finished(now)
            waiter.done.set()
