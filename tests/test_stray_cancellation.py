"""A ``CancelledError`` a handler meets on its own fails its attempt; ours still cancels.

A handler may await something that was cancelled (``sub.cancel(); await sub``) or call a
library that raises ``CancelledError`` of its own. That is the handler's failure like any
other: one counted try, retried under the usual rules, its batch-mates untouched. Only a
cancellation of the run itself (``stop()``, ``cancel()``, the caller's own cancellation)
hands the job back without a try. SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]


async def await_a_cancelled_future() -> dict[str, Any]:
    sub = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    sub.cancel()
    await sub
    return {"unreachable": True}


def raise_a_library_cancellation() -> dict[str, Any]:
    raise asyncio.CancelledError("a library's own cancellation")


@asyncjobs.task("fine")
async def fine(*, input: dict) -> dict:
    return {"n": input["n"]}


@asyncjobs.task("stray", retries=1)
async def stray() -> dict[str, Any]:
    return await await_a_cancelled_future()


@asyncjobs.task("stray-sync")
def stray_sync() -> dict[str, Any]:
    return raise_a_library_cancellation()  # raised in the worker thread


@asyncjobs.workflow("in-step")
async def in_step(*, tasks: Any) -> None:
    await tasks.fine("1", input={"n": 1})
    await tasks["stray-sync"]("2")


@asyncjobs.workflow("in-inline-task")
async def in_inline_task(*, inline_task: Any) -> None:
    await inline_task("1", task=await_a_cancelled_future)


@asyncjobs.workflow("in-handler")
async def in_handler() -> None:
    await await_a_cancelled_future()


@asyncjobs.workflow("after-timeouts")
async def after_timeouts(*, inline_task: Any) -> None:
    """Timeouts of the handler's own, handled, leave no pending cancellation behind."""
    with anyio.move_on_after(0):
        await anyio.sleep(1)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0):
            await asyncio.sleep(1)
    await inline_task("1", task=await_a_cancelled_future)


KINDS = {
    "task": {"task": "stray-sync"},
    "workflow step": {"workflow": "in-step"},
    "inline task": {"workflow": "in-inline-task"},
    "workflow handler": {"workflow": "in-handler"},
    "after timeouts": {"workflow": "after-timeouts"},
}


def make(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    return make_jobs(
        tasks=[fine, stray, stray_sync],
        workflows=[in_step, in_inline_task, in_handler, after_timeouts],
    )


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_stray_cancellation_fails_only_its_own_job(
    make_jobs: MakeJobs, kind: str, sequential: bool
) -> None:
    jobs = make(make_jobs)
    before = await jobs.queue(task="fine", input={"n": 1})
    bad = await jobs.queue(**KINDS[kind])
    after = await jobs.queue(task="fine", input={"n": 2})
    with anyio.fail_after(10):
        result = await jobs.run(sequential=sequential)
    assert result.job_status == {
        before.id: "success",
        bad.id: "error-reached-max-retries",
        after.id: "success",
    }
    failed = await jobs.get(bad.id)
    assert failed is not None
    assert (failed.status, failed.total_tried) == ("failed", 1)
    assert failed.error is not None
    assert (failed.error["name"], failed.error["cancelled"]) == ("CancelledError", False)


async def test_a_stray_cancellation_is_retried_like_any_failure(make_jobs: MakeJobs) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(task="stray")
    assert (await jobs.run()).job_status == {job.id: "error"}
    retried = await jobs.get(job.id)
    assert retried is not None
    assert (retried.status, retried.total_tried) == ("queued", 1)
    assert [(e.state, e.error and e.error["name"]) for e in retried.log] == [
        ("failed", "CancelledError")
    ]
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}


async def test_a_stray_cancellation_in_a_hook_is_the_hooks_failure(make_jobs: MakeJobs) -> None:
    async def on_fail() -> None:
        await await_a_cancelled_future()

    @asyncjobs.task("failing", on_fail=on_fail)
    async def failing() -> None:
        raise RuntimeError("the step's own failure")

    @asyncjobs.task("restored", retries=asyncjobs.Retries(should_restore=await_a_cancelled_future))
    async def restored() -> None:
        return None

    @asyncjobs.workflow("restoring")
    async def restoring(*, tasks: Any) -> None:
        await tasks.restored("1")
        await tasks.restored("1")  # memoized: asks should_restore

    jobs = make_jobs(tasks=[fine, failing, restored], workflows=[restoring])
    ok = await jobs.queue(task="fine", input={"n": 1})
    hook = await jobs.queue(task="failing")
    restore = await jobs.queue(workflow="restoring")
    result = await jobs.run()
    assert result.job_status == {
        ok.id: "success",
        hook.id: "error-reached-max-retries",
        restore.id: "error-reached-max-retries",
    }
    errors = [await jobs.get(job_id) for job_id in (hook.id, restore.id)]
    assert [job and job.error and job.error["name"] for job in errors] == [
        "RuntimeError",
        "CancelledError",
    ]


class Held:
    """A task that waits until the test cancels the run around it."""

    def __init__(self) -> None:
        self.started = anyio.Event()

    async def wait_forever(self) -> None:
        self.started.set()
        await anyio.sleep_forever()

    def task(self) -> asyncjobs.Task:
        return asyncjobs.Task("held", self.wait_forever)


async def assert_handed_back(jobs: asyncjobs.Jobs, job_id: int) -> None:
    job = await jobs.get(job_id)
    assert job is not None
    assert (job.status, job.total_tried, job.processing_until) == ("queued", 0, None)


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
async def test_cancelling_the_caller_of_run_hands_the_job_back(
    make_jobs: MakeJobs, sequential: bool
) -> None:
    held = Held()
    jobs = make_jobs(tasks=[held.task()])
    job = await jobs.queue(task="held")
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: jobs.run(sequential=sequential))
            await held.started.wait()
            tg.cancel_scope.cancel()
    await assert_handed_back(jobs, job.id)


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
async def test_an_asyncio_cancellation_of_run_still_cancels_it(
    make_jobs: MakeJobs, sequential: bool
) -> None:
    held = Held()
    jobs = make_jobs(tasks=[held.task()])
    job = await jobs.queue(task="held")
    running = asyncio.ensure_future(jobs.run(sequential=sequential))
    with anyio.fail_after(10):
        await held.started.wait()
        running.cancel()
        with pytest.raises(asyncio.CancelledError):
            await running
    await assert_handed_back(jobs, job.id)
