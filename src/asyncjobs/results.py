"""``jobs.wait(id)``: a job's outcome once it is known, woken by the finished bus.

``Jobs`` inherits :class:`Waiting`; it uses only the attributes declared here. In this process
the runner and ``cancel()`` announce finished jobs on ``wake.finished``. Other processes' are
heard through the store: on PostgreSQL a LISTEN held while anyone waits; SQLite has no
notifications, so a waiter looks again every ``store.finished_poll`` seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import anyio

from asyncjobs.checks import check_id
from asyncjobs.models import Job, make_job
from asyncjobs.storage import Store
from asyncjobs.wake import WakeBus

FINISHED = frozenset({"completed", "failed", "cancelled"})


class Waiting:
    """``wait()`` of the facade."""

    store: Store
    wake: WakeBus
    clock: Callable[[], datetime]

    async def _ready(self) -> None: ...

    async def wait(self, id: int, *, timeout: float | None = None) -> Job | None:
        """The job once it completed, failed or was cancelled; ``None`` when there is no such
        job (never queued, or deleted on completion).

        Raises:
            TimeoutError: it had not finished after ``timeout`` seconds (real time).
        """
        job_id = check_id(id)
        _check_timeout(timeout)
        await self._ready()
        with anyio.fail_after(timeout):
            while True:
                # Subscribed before reading, so a finish between the read and the wait is heard.
                with self.wake.finished.watch(job_id) as finished:
                    async with self.store.watch_finished(self.wake.finished, job_id):
                        row = await self.store.get(job_id)
                        job = None if row is None else make_job(row, self.clock())
                        if job is None or job.status in FINISHED:
                            return job
                        with anyio.move_on_after(self.store.finished_poll or float("inf")):
                            await finished.wait()


def _check_timeout(timeout: object) -> None:
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(f"timeout must be a number of seconds or None, got {timeout!r:.40}")
    if not timeout >= 0:
        raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
