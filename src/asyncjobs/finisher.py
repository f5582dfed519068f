"""Group commit of completions: jobs of a batch that finish together share one statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import anyio
import anyio.lowlevel

from asyncjobs import logs
from asyncjobs.attempt import WRITE_GRACE, Attempt
from asyncjobs.errors import ConnectionLost, StorageError
from asyncjobs.models import RunStatus
from asyncjobs.storage import Store

Settle = Callable[[Attempt, RunStatus | None], None]
Refused = Callable[[Attempt, Exception], Awaitable[RunStatus | None]]


class Finisher:
    """Records successful attempts of one batch, several per fenced statement.

    The first job to finish writes; jobs finishing while that write is in flight are written
    together by the next one. Each row is still checked against the batch token and the lease.
    A job handed over ends its task at once, and ``settle`` gets its outcome once written:
    ``"success"``, or ``None`` when its lease was lost, it was cancelled meanwhile or the
    connection broke. A write failing for another reason is retried job by job, and a job
    whose own completion cannot be written goes to ``refused``, which records its failure.
    Ending early keeps the batch's objects few while the write is in flight, so fewer of them
    live long enough to reach the old GC generations.
    """

    def __init__(
        self,
        store: Store,
        token: str,
        clock: Callable[[], datetime],
        buffer: timedelta,
        *,
        delete: bool,
        settle: Settle,
        refused: Refused,
    ) -> None:
        self.store, self.token, self.clock, self.buffer = store, token, clock, buffer
        self.delete = delete
        self.settle = settle
        self.refused = refused
        self._waiting: list[Attempt] = []
        self._flushing = False
        self._started: anyio.Event | None = None

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Hold the first write back until every job of the batch has been started."""
        self._started = anyio.Event()
        try:
            yield
        finally:
            self._started.set()

    async def finish(self, attempt: Attempt) -> None:
        """Mark ``attempt`` completed (or delete it), now or by the write in flight."""
        attempt.releasing = True
        self._waiting.append(attempt)
        if not self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        self._flushing = True
        batch: list[Attempt] = []
        try:
            # Shielded like every job write: a commit must not be lost to a cancellation.
            with anyio.CancelScope(shield=True):  # the batch's starts end soon, whatever comes
                await anyio.lowlevel.checkpoint()  # let siblings finishing now join this write
                started = self._started
                if started is not None and not started.is_set():  # later jobs join it too
                    await started.wait()
            # Jobs finishing during a write join the next one, so a flush lasts as long as they
            # keep coming: each write has its own grace.
            while self._waiting:
                batch, self._waiting = self._waiting, []
                with anyio.move_on_after(WRITE_GRACE, shield=True):
                    await self._write(batch)
                    batch = []
                self._abandon(batch)  # its grace ran out before it was written
                batch = []
        finally:
            self._flushing = False
            self._abandon([*batch, *self._waiting])  # only after an error
            self._waiting = []

    def _abandon(self, batch: list[Attempt]) -> None:
        for attempt in batch:
            if attempt.result is None:  # not settled by a write of its own meanwhile
                self.settle(attempt, None)

    async def _write(self, batch: list[Attempt]) -> None:
        if not self.store.is_open:  # stopped meanwhile: ``stop()`` handed the jobs back
            for attempt in batch:
                self.settle(attempt, None)
            return
        now = self.clock()
        unsaved = {attempt.id: attempt.unsaved_log() for attempt in batch}
        # A child is completed first even so: its output reaches its parent from that write.
        delete = self.delete and all(attempt.row.parent_id is None for attempt in batch)
        outputs = None if delete else {attempt.id: attempt.output for attempt in batch}
        try:
            owned = await self.store.finish_owned(
                unsaved,
                self.token,
                live_after=now + self.buffer,
                now=now,
                delete=delete,
                outputs=outputs,
            )
            if delete != self.delete:
                await self._delete(owned)
        except ConnectionLost:  # not the jobs' fault: they are left to their leases
            for attempt in batch:
                unrecorded(attempt)
                self.settle(attempt, None)
            return
        except Exception as exc:  # one of them, say, holds a value that cannot be stored
            await self._refused(batch, exc)
            return
        for attempt in batch:
            if attempt.id in owned:
                attempt.finished(now)
                self.settle(attempt, "success")
            else:
                self.settle(attempt, None)

    async def _delete(self, owned: set[int]) -> None:
        """Delete completed jobs of a batch with children; a failure only leaves them kept."""
        try:
            await self.store.delete_finished(sorted(owned))
        except StorageError:
            logs.error("Could not delete completed jobs %s", sorted(owned), exc=True)

    async def _refused(self, batch: list[Attempt], exc: Exception) -> None:
        """Write each job alone, so that only those whose own write fails are failed."""
        if len(batch) > 1:
            for attempt in batch:
                await self._write([attempt])
            return
        (attempt,) = batch
        self.settle(attempt, await self.refused(attempt, exc))


def unrecorded(attempt: Attempt) -> None:
    logs.error("Could not record job %s", attempt.id, extra=logs.job_fields(attempt.row), exc=True)
