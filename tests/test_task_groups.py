"""A task group inside a workflow handler does not hide the engine's own signals.

``JobCancelled`` raised in a child task cancels the job, and a step failing in a child task
keeps its task's retries, as they would without the group. SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]
calls: list[str] = []


@asyncjobs.task("flaky", retries=2)
async def flaky() -> dict[str, Any]:
    calls.append("flaky")
    raise RuntimeError("down")


@asyncjobs.workflow("cancels-in-group", retries=3)
async def cancels_in_group() -> None:
    async def stop() -> None:
        raise asyncjobs.JobCancelled("no longer wanted")

    async with anyio.create_task_group() as tg:
        tg.start_soon(stop)


@asyncjobs.workflow("fails-step-in-group")
async def fails_step_in_group(*, tasks: Any) -> None:
    async with anyio.create_task_group() as tg:
        tg.start_soon(tasks.flaky, "1")


@asyncjobs.workflow("plain-error-in-group")
async def plain_error_in_group() -> None:
    async def boom() -> None:
        raise KeyError("path")

    async with anyio.create_task_group() as tg:
        tg.start_soon(boom)


async def test_job_cancelled_in_a_task_group_cancels_the_job(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[cancels_in_group])
    job = await jobs.queue(workflow="cancels-in-group")
    await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None and done.status == "cancelled" and done.total_tried == 0
    assert done.error is not None and done.error["message"] == "no longer wanted"


async def test_a_step_failing_in_a_task_group_keeps_its_task_retries(
    make_jobs: MakeJobs, clock: Any
) -> None:
    calls.clear()
    jobs = make_jobs(tasks=[flaky], workflows=[fails_step_in_group])
    job = await jobs.queue(workflow="fails-step-in-group")
    for _ in range(5):
        await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None and done.status == "failed"
    assert calls == ["flaky"] * 3  # the task's retries=2: three runs, as without the group


async def test_an_ordinary_error_in_a_task_group_stays_the_handlers_failure(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(workflows=[plain_error_in_group])
    job = await jobs.queue(workflow="plain-error-in-group")
    await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None and done.status == "failed" and done.error is not None
    assert "ExceptionGroup" in done.error["name"]
