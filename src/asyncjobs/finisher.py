"""Group commit of completions: jobs of a batch that finish together share one statement."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import anyio
import anyio.lowlevel

from asyncjobs import keeping, logs
from asyncjobs.attempt import WRITE_GRACE, Attempt
from asyncjobs.errors import ConnectionLost, StorageError
from asyncjobs.models import RunStatus
from asyncjobs.storage import Store

Settle = Callable[[Attempt, RunStatus | None], None]
Refused = Callable[[Attempt, Exception], Awaitable[RunStatus | None]]


class Finisher:
    """Records successful attempts, several per fenced statement.

    The first job to finish writes; jobs finishing while that write is in flight are written
    together by the next one. Each row is still checked against its own lease token (jobs of
    several claims may share a write) and the lease. With ``group=(size, delay)`` the first
    write waits up to ``delay`` seconds for ``size`` jobs (the slots of an autoRun entry).
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
        clock: Callable[[], datetime],
        buffer: timedelta,
        *,
        delete: bool,
        settle: Settle,
        refused: Refused,
        group: tuple[int, float] | None = None,
    ) -> None:
        self.store, self.clock, self.buffer = store, clock, buffer
        self.delete = delete
        self.settle = settle
        self.refused = refused
        self.group = group
        self._waiting: list[Attempt] = []
        self._flushing = False
        self._started: anyio.Event | None = None
        self._enough: anyio.Event | None = None
        self._written = anyio.Event()  # set when the jobs waiting now have been written

    @contextmanager
    def starting(self) -> Iterator[None]:
        """Hold the first write back until every job of the batch has been started."""
        started = self._started = anyio.Event()  # claims sharing this finisher each set theirs
        try:
            yield
        finally:
            started.set()

    async def finish(self, attempt: Attempt) -> None:
        """Mark ``attempt`` completed (or delete it), now or by the write in flight."""
        attempt.releasing = True
        self._waiting.append(attempt)
        enough, written = self._enough, self._written
        if enough is not None and self.group is not None and len(self._waiting) >= self.group[0]:
            enough.set()
        if not self._flushing:
            await self._flush()
        elif self.group is not None:  # a claim shares this finisher with others: its task
            with anyio.CancelScope(shield=True):  # ends once its jobs are written, so that
                await written.wait()  # it never hands back a job whose write is in flight

    async def _flush(self) -> None:
        self._flushing = True
        batch: list[Attempt] = []
        written = anyio.Event()
        try:
            # Shielded like every job write: a commit must not be lost to a cancellation.
            with anyio.CancelScope(shield=True):  # the batch's starts end soon, whatever comes
                await anyio.lowlevel.checkpoint()  # let siblings finishing now join this write
                started = self._started
                if started is not None and not started.is_set():  # later jobs join it too
                    await started.wait()
                await self._gather()
            # Jobs finishing during a write join the next one, so a flush lasts as long as they
            # keep coming: each write has its own grace.
            while self._waiting:
                batch, self._waiting = _one_per_job(self._waiting)
                written, self._written = self._written, anyio.Event()
                with anyio.move_on_after(WRITE_GRACE, shield=True):
                    await self._write(batch)
                    batch = []
                self._abandon(batch)  # its grace ran out before it was written
                batch = []
                written.set()
        finally:
            self._flushing = False
            self._abandon([*batch, *self._waiting])  # only after an error
            self._waiting = []
            written.set()
            self._written.set()
            self._written = anyio.Event()

    async def _gather(self) -> None:
        """With ``group``: wait a little for more jobs of other claims to finish."""
        if self.group is None or len(self._waiting) >= self.group[0]:
            return
        self._enough = anyio.Event()
        with anyio.move_on_after(self.group[1]):
            await self._enough.wait()
        self._enough = None

    def _abandon(self, batch: list[Attempt]) -> None:
        for attempt in batch:
            if attempt.result is None:  # not settled by a write of its own meanwhile
                self.settle(attempt, None)

    async def _write(self, batch: list[Attempt]) -> None:
        for delete, group in keeping.by_deletion(batch, self.delete):
            await self._write_group(group, delete)

    async def _write_group(self, batch: list[Attempt], delete: bool) -> None:
        if not self.store.is_open:  # stopped meanwhile: ``stop()`` handed the jobs back
            for attempt in batch:
                self.settle(attempt, None)
            return
        now = self.clock()
        unsaved = {attempt.id: attempt.unsaved_log() for attempt in batch}
        # A child is completed first even so: its output reaches its parent from that write.
        then_delete = delete and any(attempt.row.parent_id is not None for attempt in batch)
        delete = delete and not then_delete
        outputs = None if delete else {attempt.id: attempt.output for attempt in batch}
        try:
            owned = await self.store.finish_owned(
                unsaved,
                {attempt.id: attempt.token for attempt in batch},
                live_after=now + self.buffer,
                now=now,
                delete=delete,
                outputs=outputs,
            )
            if then_delete:
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


def _one_per_job(waiting: list[Attempt]) -> tuple[list[Attempt], list[Attempt]]:
    """The attempts to write now, and those of a job already among them (a job re-claimed
    after its lease ran out, by the same process): one row cannot be written twice at once."""
    batch: dict[int, Attempt] = {}
    later: list[Attempt] = []
    for attempt in waiting:
        if attempt.id in batch:
            later.append(attempt)
        else:
            batch[attempt.id] = attempt
    return list(batch.values()), later


def unrecorded(attempt: Attempt) -> None:
    logs.error("Could not record job %s", attempt.id, extra=logs.job_fields(attempt.row), exc=True)
