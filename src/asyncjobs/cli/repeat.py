"""Running a command once or on a cron, never overlapping itself, stopping cleanly on signals."""

from __future__ import annotations

import logging
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime

import anyio
from anyio.abc import TaskGroup

from asyncjobs.cron import Cron
from asyncjobs.errors import AsyncJobsError
from asyncjobs.jobs import Jobs

logger = logging.getLogger("asyncjobs.cli")

Operation = Callable[[], Awaitable[None]]
FORCE_POLL = 0.05


class Repeater:
    """Runs ``operation`` once, or at every tick of ``cron`` until SIGINT/SIGTERM.

    On the first signal no new run starts; a run in progress gets ``stop_timeout`` seconds to
    finish, then its jobs are handed back (their leases released). A second signal does that
    at once. With ``cancellable`` the operation itself is cancelled too (a user script).
    """

    def __init__(
        self,
        jobs: Jobs,
        operation: Operation,
        *,
        cron: Cron | None,
        stop_timeout: float,
        cancellable: bool = False,
    ) -> None:
        self.jobs, self.operation, self.cron = jobs, operation, cron
        self.stop_timeout, self.cancellable = stop_timeout, cancellable
        self.stopping = anyio.Event()
        self.running = False
        self._scope: anyio.CancelScope | None = None

    async def run(self) -> None:
        """Run until done (once) or interrupted (cron); re-raise a failure of a single run."""
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_signals, tg)
            try:
                await self._loop()
            except Exception as exc:
                # Raised outside the task group, so callers see the error, not a group.
                failure = exc
            finally:
                tg.cancel_scope.cancel()
        if failure is not None:
            raise failure

    async def _loop(self) -> None:
        if self.cron is None:
            await self._run_once()
            return
        logger.info("Repeating on cron %r until interrupted (SIGINT/SIGTERM).", self.cron.expr)
        last: datetime | None = None
        while not self.stopping.is_set():
            now = self.jobs.clock()
            # An early timer wake-up must not fire the same tick twice.
            last = self.cron.next_after(now if last is None else max(now, last))
            with anyio.move_on_after((last - now).total_seconds()):
                await self.stopping.wait()
            if not self.stopping.is_set():
                await self._run_logging_errors()
        logger.info("Stopped.")

    async def _run_logging_errors(self) -> None:
        try:
            await self._run_once()
        except AsyncJobsError as exc:
            logger.error("This run failed: %s", " ".join(str(exc).split()))
        except Exception:
            logger.exception("This run failed; the next one runs on schedule")

    async def _run_once(self) -> None:
        self.running = True
        try:
            with anyio.CancelScope() as scope:
                self._scope = scope
                await self.operation()
        finally:
            self.running, self._scope = False, None

    async def _watch_signals(self, tg: TaskGroup) -> None:
        try:
            receiver = anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM)
        except NotImplementedError:  # pragma: no cover - event loops without signal support
            return
        with receiver as signals:
            async for signum in signals:
                self._on_signal(signal.Signals(signum).name, tg)

    def _on_signal(self, name: str, tg: TaskGroup) -> None:
        if self.stopping.is_set():
            tg.start_soon(self._force, 0.0)
            return
        self.stopping.set()
        if self.running:
            logger.warning(
                "%s received: letting the current run finish (up to %gs; signal again to stop now)",
                name,
                self.stop_timeout,
            )
            tg.start_soon(self._force, self.stop_timeout)

    async def _force(self, delay: float) -> None:
        await anyio.sleep(delay)
        if self.running:
            logger.warning("Stopping now: handing back the jobs that are still running.")
        while self.running:
            await self.jobs.runner.drain(0)
            if self.cancellable and self._scope is not None:
                self._scope.cancel()
            await anyio.sleep(FORCE_POLL)
