"""Claim → execute → record: runs a batch of jobs under renewed, fenced leases."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Final, Literal, NamedTuple

import anyio
import anyio.lowlevel

from asyncjobs import durable, failures, logs, suspension, telemetry
from asyncjobs.attempt import Attempt
from asyncjobs.checks import seconds
from asyncjobs.errors import (
    ConnectionLost,
    HandlerImportError,
    JobCancelled,
    JobRunAborted,
    NotRegistered,
    StorageError,
    Suspended,
    WriteRefused,
)
from asyncjobs.finisher import Finisher, Settle, unrecorded
from asyncjobs.models import JobRow, RunResult, RunStatus
from asyncjobs.plans import Plan, Plans
from asyncjobs.policies import Lease
from asyncjobs.registry import Registry
from asyncjobs.step_runner import StepRunner, TaskFailed, stray
from asyncjobs.step_writes import StepWrites
from asyncjobs.storage import Claim, Selection, Store
from asyncjobs.wake import Wake

MIN_HEARTBEAT = 0.05
CANCEL_CHECK_INTERVAL = 0.5  # seconds between checks for jobs cancelled elsewhere
# Jobs of a batch start this many at a time, each group running to its first wait before the
# next starts: the host loop gets a turn between groups, and a batch's task objects are never
# all alive at once (fewer of them live long enough to reach the old GC generation).
START_GROUP = 10
HandedOver = Literal["handed over"]
Ended = Callable[[], None]
HANDED_OVER: Final[HandedOver] = "handed over"  # a success the batch's Finisher settles


class Batch(NamedTuple):
    """Jobs claimed together: their attempts, lease token, and the scope ``stop()`` cancels."""

    attempts: list[Attempt]
    token: str
    scope: anyio.CancelScope


@dataclass(frozen=True, kw_only=True)
class RunRequest(Selection):
    """What one ``run()`` asks for, after defaults and validation."""

    sequential: bool = False
    silent: logs.Silent = False


class Runner:
    """Runs claimed jobs; tracks them so ``stop()`` can drain or hand them back."""

    def __init__(
        self,
        *,
        store: Store,
        registry: Registry,
        host: object,
        lease: Lease,
        clock: Callable[[], datetime],
        delete_on_complete: bool,
        on_retry: Wake | None = None,
        on_finished: Callable[[Iterable[int]], None] | None = None,
    ) -> None:
        self.store, self.registry, self.host, self.clock = store, registry, host, clock
        self.duration = timedelta(seconds=seconds(lease.duration))
        self.buffer = timedelta(seconds=seconds(lease.safety_buffer))
        self.delete_on_complete = delete_on_complete
        self.running: dict[int, Attempt] = {}
        # Called with (queue, due) when a job failed and will be retried.
        self.on_retry = on_retry
        # Called with the ids of jobs that completed, failed for good or were cancelled.
        self.on_finished = on_finished
        self._batches: set[anyio.CancelScope] = set()
        self._idle = anyio.Event()
        self._idle.set()
        self.plans = Plans(registry)  # every definition compiled once, here
        self.log_writes = StepWrites(store, clock, self.buffer)  # shared by every batch

    async def run(self, request: RunRequest) -> RunResult:
        """Claim up to ``request.limit`` jobs and run them; return when all have ended."""
        with logs.silenced(request.silent):
            claimed = await self.claim_batch(request, request.limit)
            if claimed is None:
                return RunResult(no_jobs_remaining=True)
            statuses: dict[int, RunStatus] = {}
            finisher = self.finisher(partial(self.settle, statuses=statuses))
            await self.run_batch(claimed, finisher, sequential=request.sequential)
            return RunResult(
                job_status=statuses,
                remaining_jobs_from_queried=sum(1 for s in statuses.values() if s == "error"),
            )

    async def claim_batch(self, request: RunRequest, limit: int) -> Batch | None:
        """Lease up to ``limit`` jobs to a new token; the batch counts as running at once
        (``stop()`` waits for it), so ``run_batch`` must follow."""
        now = self.clock()
        await telemetry.refresh_depth(self.store, now)
        token = uuid.uuid4().hex
        claim = Claim.of(
            replace(request, limit=limit),
            now=now,
            until=now + self.duration,
            token=token,
            keyed=self.registry.keyed,
        )
        rows = [JobRow.of(r) for r in await self.store.claim(claim)]
        if not rows:
            return None
        fresh = sum(1 for r in rows if r.total_tried == 0)
        logs.info(
            "Running %d %s.",
            len(rows),
            "job" if len(rows) == 1 else "jobs",
            extra={"new": fresh, "retrying": len(rows) - fresh},
        )
        reporting = telemetry.active()
        attempts = [self._attempt(row, token, reporting) for row in rows]
        scope = anyio.CancelScope()
        self._enter(scope, attempts)
        return Batch(attempts, token, scope)

    def finisher(self, settle: Settle, group: tuple[int, float] | None = None) -> Finisher:
        return Finisher(
            self.store,
            self.clock,
            self.buffer,
            delete=self.delete_on_complete,
            settle=settle,
            refused=self._refused,
            group=group,
        )

    def _attempt(self, row: JobRow, token: str, reporting: telemetry.Active | None) -> Attempt:
        return Attempt(
            row=row,
            token=token,
            store=self.store,
            clock=self.clock,
            safety_buffer=self.buffer,
            defer_top_step=not row.workflow_slug,
            log_writes=self.log_writes,
            reporting=reporting,
        )

    async def run_batch(
        self,
        batch: Batch,
        finisher: Finisher,
        *,
        sequential: bool = False,
        ended: Ended | None = None,
    ) -> None:
        """Run a claimed batch under its heartbeat; hand back what did not end."""
        attempts, token, scope = batch
        try:
            with scope:
                async with anyio.create_task_group() as tg:
                    done = anyio.Event()
                    tg.start_soon(self._heartbeat, attempts, token, done)
                    try:
                        await self._execute_all(attempts, sequential, finisher, ended)
                    finally:
                        done.set()  # ends the heartbeat without a cancellation to unwind
        finally:
            unfinished = [a.id for a in attempts if a.result is None]
            if unfinished:
                with anyio.CancelScope(shield=True):
                    await self._hand_back(unfinished, token)
            self._leave(scope, attempts)

    async def _execute_all(
        self, attempts: list[Attempt], sequential: bool, finisher: Finisher, ended: Ended | None
    ) -> None:
        if sequential:
            for attempt in attempts:
                await self._run_one(attempt, finisher, ended)
            return
        async with anyio.create_task_group() as tg:
            with finisher.starting():
                for index, attempt in enumerate(attempts, 1):
                    tg.start_soon(self._run_one, attempt, finisher, ended)
                    if index % START_GROUP == 0 and index < len(attempts):
                        await anyio.lowlevel.checkpoint()

    async def _run_one(
        self, attempt: Attempt, finisher: Finisher, ended: Ended | None = None
    ) -> None:
        """Run one job; a success is handed to ``finisher``, which settles it when written.

        The task ends at the hand-over rather than waiting for the group write: a batch's
        tasks, frames and scopes would otherwise all be alive while it is in flight, and
        objects that survive young collections reach the old generation, whose full
        collections pause the host loop for the whole heap.
        """
        status: RunStatus | HandedOver | None = None
        with attempt.new_scope(), telemetry.process_span(attempt, attempt.reporting):
            try:
                status = await self._execute(attempt, finisher, ended)
            except JobRunAborted:
                status = None
            except StorageError:
                unrecorded(attempt)
                status = None
            except WriteRefused as refused:  # recording its failure failed in turn
                status = await self._refused(attempt, refused)
            finally:
                if ended is not None and status != HANDED_OVER:
                    ended()  # its slot is free (a success freed it when handed over)
            if status != HANDED_OVER:
                finisher.settle(attempt, status)
        attempt.scope = None

    async def _refused(self, attempt: Attempt, exc: Exception) -> RunStatus | None:
        steps = StepRunner(attempt, self.registry, self.host)
        return await failures.outcome_refused(attempt, steps, exc)

    def settle(
        self,
        attempt: Attempt,
        status: RunStatus | None,
        statuses: dict[int, RunStatus] | None = None,
    ) -> None:
        attempt.result = status or "aborted"
        telemetry.settled(attempt, status)
        if status is not None and statuses is not None:
            statuses[attempt.id] = status
        _log_outcome(attempt)
        if status == "error":
            self._announce_retry(attempt)
        elif status not in (None, "suspended") and self.on_finished is not None:
            self.on_finished((attempt.id,))
        suspension.child_settled(attempt, status, self.on_retry)

    def _announce_retry(self, attempt: Attempt) -> None:
        if self.on_retry is not None:
            self.on_retry(attempt.row.queue, attempt.row.wait_until or self.clock())

    async def _execute(
        self, attempt: Attempt, finisher: Finisher, ended: Ended | None
    ) -> RunStatus | HandedOver | None:
        try:
            plan = self.plans.for_row(attempt.row)
        except NotRegistered as exc:
            return await failures.failed_for_good(attempt, exc)
        attempt.retries = plan.retries
        steps = StepRunner(attempt, self.registry, self.host, durable=durable.injected)
        outcome = await self._body(attempt, plan, steps)
        if outcome is not None:
            return outcome
        if ended is not None:
            ended()  # its slot is free: a success waits for its write without holding one
        await finisher.finish(attempt)
        return HANDED_OVER

    async def _body(self, attempt: Attempt, plan: Plan, steps: StepRunner) -> RunStatus | None:
        """Run the handler; what a failure, a cancel or a suspension wrote, else ``None``."""
        try:
            attempt.output = await plan.body(steps, attempt.row.input or {})
        except HandlerImportError as exc:
            return await failures.failed_for_good(attempt, exc)
        except JobCancelled as exc:
            return await failures.cancelled(attempt, str(exc) or "cancelled by its handler")
        except TaskFailed as failure:
            return await failures.task_failed(attempt, steps, failure)
        except (JobRunAborted, ConnectionLost):
            raise  # not the job's fault: it is handed back (or left to its lease), no try
        except Exception as exc:
            return await failures.workflow_failed(attempt, exc)
        except Suspended as waiting:  # a durable wait: no try, the lease released at once
            return await suspension.suspend(attempt, waiting.write, self.on_retry)
        except asyncio.CancelledError as exc:
            if not await stray(exc):
                raise
            return await failures.workflow_failed(attempt, exc)
        return None

    async def _heartbeat(self, attempts: list[Attempt], token: str, done: anyio.Event) -> None:
        """Renew the batch's leases and notice jobs cancelled by another instance.

        Leases are renewed every duration/3; between renewals, every ``CANCEL_CHECK_INTERVAL``
        seconds, one primary-key read checks that the batch still holds its tokens. A job found
        gone has its handler cancelled. The heartbeat exists only while a batch runs, so an
        idle instance sends nothing. (A cancel made through this process interrupts the handler
        at once, see ``cancel_running``.)
        """
        renew_every = max(self.duration.total_seconds() / 3, MIN_HEARTBEAT)
        renew_at = anyio.current_time() + renew_every
        while True:
            with anyio.move_on_after(min(renew_every, CANCEL_CHECK_INTERVAL)):
                await done.wait()
            if done.is_set():
                return
            renew = anyio.current_time() >= renew_at
            if renew:
                renew_at = anyio.current_time() + renew_every
            await self._check_leases(attempts, token, renew=renew)

    async def _check_leases(self, attempts: list[Attempt], token: str, *, renew: bool) -> None:
        live = [a for a in attempts if a.result is None]
        if not live:
            return
        ids = [a.id for a in live]
        try:
            if renew:
                now = self.clock()
                owned = await self.store.renew(
                    ids, token, live_after=now + self.buffer, until=now + self.duration
                )
            else:
                owned = await self.store.owned(ids, token)
        except StorageError:
            logs.error("Failed to check job processing leases", exc=True)
            return
        for attempt in live:
            if attempt.id not in owned and attempt.holding:
                logs.info(
                    "Job %s was cancelled or lost its lease; stopping it.",
                    attempt.id,
                    extra=logs.job_fields(attempt.row),
                )
                attempt.cancel()

    async def _hand_back(self, unfinished: list[int], token: str) -> None:
        if not self.store.is_open:  # stop() already handed them back (see ``drain``)
            return
        try:
            await self.store.release(unfinished, token)
        except StorageError:
            logs.error("Could not release jobs %s; their leases will expire", unfinished, exc=True)

    def _enter(self, scope: anyio.CancelScope, attempts: list[Attempt]) -> None:
        self._batches.add(scope)
        if self._idle.is_set():
            self._idle = anyio.Event()
        self.running.update((a.id, a) for a in attempts)

    def _leave(self, scope: anyio.CancelScope, attempts: list[Attempt]) -> None:
        self._batches.discard(scope)
        for attempt in attempts:
            self.running.pop(attempt.id, None)
        if not self._batches:
            self._idle.set()

    def cancel_running(self, ids: list[int]) -> None:
        """Interrupt the handlers of these jobs if they run in this process.

        Async handlers are cancelled at their next await; a sync handler's worker thread
        cannot be interrupted, so its call is abandoned and whatever it returns is discarded.
        """
        for job_id in ids:
            attempt = self.running.get(job_id)
            if attempt is not None:
                attempt.cancel()

    async def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for running batches, then cancel them (leases are released).

        A handler that outlives its cancellation (one that shields itself) has its job handed
        back all the same: the token it holds no longer matches, so it writes nothing later.
        """
        with anyio.move_on_after(timeout):
            await self._idle.wait()
        for scope in list(self._batches):
            scope.cancel()
        with anyio.move_on_after(max(timeout, 1.0)):
            await self._idle.wait()
        outliving: dict[str, list[int]] = {}
        for attempt in self.running.values():
            if attempt.result is None:
                outliving.setdefault(attempt.token, []).append(attempt.id)
        for token, ids in outliving.items():
            await self._hand_back(ids, token)


def _log_outcome(attempt: Attempt) -> None:
    row = attempt.row
    logs.info(
        "Job %s (%s) finished: %s",
        attempt.id,
        row.slug,
        attempt.result,
        extra={**logs.job_fields(row), "status": attempt.result},
    )
