"""``stop(timeout)`` hands back every job it could not finish, even one whose handler outlives it.

A sync handler's worker thread cannot be interrupted, and an async handler may shield itself
from cancellation. Either way the job is released when ``stop()`` returns, ``run()`` ends
without an error, and what the handler does later is discarded. SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]
LEASE = asyncjobs.Lease(duration=60, safety_buffer=5)
WAIT = 10.0  # seconds a thread waits for the test at most


class SyncHandler:
    """A sync task blocked on a ``threading.Event`` that the test releases."""

    ends_with_stop = True

    def __init__(self) -> None:
        self.calls = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.returned = threading.Event()

    def handler(self) -> dict[str, Any]:
        self.calls += 1
        self.started.set()
        self.release.wait(WAIT)
        self.returned.set()
        return {"late": self.calls}

    async def wait_started(self) -> None:
        assert await anyio.to_thread.run_sync(self.started.wait, WAIT)

    async def wait_returned(self) -> None:
        assert await anyio.to_thread.run_sync(self.returned.wait, WAIT)


class ShieldedHandler:
    """An async task that shields itself from cancellation until the test releases it."""

    ends_with_stop = False
    writes_shielded = False

    def __init__(self) -> None:
        self.calls = 0
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.returned = anyio.Event()

    async def handler(self, *, inline_task: Any) -> dict[str, Any]:
        self.calls += 1
        self.started.set()
        try:
            with anyio.CancelScope(shield=True):
                await self.release.wait()
                if self.writes_shielded:  # a step, written while still shielded
                    await inline_task("inner", task=lambda: {"inner": True})
        finally:
            self.returned.set()
        return {"late": self.calls}

    async def wait_started(self) -> None:
        await self.started.wait()

    async def wait_returned(self) -> None:
        await self.returned.wait()


class ShieldedWritingHandler(ShieldedHandler):
    """Like ``ShieldedHandler``, but it also runs a step before leaving its shield."""

    writes_shielded = True


@asynccontextmanager
async def running(jobs: asyncjobs.Jobs, results: list[Any]) -> AsyncIterator[anyio.Event]:
    """Run ``jobs.run()`` in the background; the event is set once it has returned."""
    ended = anyio.Event()

    async def run() -> None:
        results.append(await jobs.run())
        ended.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(run)
        yield ended


async def assert_runnable_and_untouched(jobs: asyncjobs.Jobs, job_id: int) -> None:
    job = await jobs.get(job_id)
    assert job is not None
    assert (job.status, job.processing_until, job.total_tried, job.log) == ("queued", None, 0, [])


KINDS = {  # and whether the test reopens the store before the handler's late outcome
    "thread": (SyncHandler, True),
    "thread, store closed": (SyncHandler, False),
    "shielded": (ShieldedHandler, True),
    "shielded, store closed": (ShieldedHandler, False),
    "shielded step": (ShieldedWritingHandler, True),
    "shielded step, store closed": (ShieldedWritingHandler, False),
}


@pytest.mark.parametrize("kind", list(KINDS))
async def test_stop_hands_back_a_job_whose_handler_outlives_it(
    make_jobs: MakeJobs, kind: str
) -> None:
    handler, reopen = KINDS[kind]
    held = handler()
    jobs = make_jobs(tasks=[asyncjobs.Task("held", held.handler)], lease=LEASE)
    job = await jobs.queue(task="held")
    results: list[Any] = []
    async with running(jobs, results) as ended:
        try:
            await held.wait_started()
            with anyio.fail_after(5):
                await jobs.stop(timeout=0.05)
            # A thread's call is abandoned; a shielded handler keeps its run() until it returns.
            assert ended.is_set() is held.ends_with_stop
            if reopen:
                await assert_runnable_and_untouched(jobs, job.id)
        finally:
            held.release.set()
        await held.wait_returned()
        with anyio.fail_after(5):
            await ended.wait()
    assert results == [asyncjobs.RunResult(job_status={})]  # run() did not raise
    await assert_runnable_and_untouched(jobs, job.id)  # the late result was discarded
    assert (await jobs.run()).job_status == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None
    assert done.task_status["held"]["1"].output == {"late": 2}
