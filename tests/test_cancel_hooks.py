"""``JobCancelled`` raised from a hook cancels the job: no retry, no log entry, no try counted."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]
CANCELLED = {"name": "JobCancelled", "message": "stop here", "cancelled": True}


def stop(**_: Any) -> None:
    raise asyncjobs.JobCancelled("stop here")


async def assert_cancelled(jobs: asyncjobs.Jobs, job_id: int, *, tried: int = 0) -> None:
    stored = await jobs.get(job_id)
    assert stored is not None
    assert (stored.status, stored.total_tried, stored.error) == ("cancelled", tried, CANCELLED)
    assert (await jobs.run()).no_jobs_remaining


async def test_job_cancelled_from_on_fail_cancels_the_job(make_jobs: MakeJobs) -> None:
    async def broken() -> None:
        raise RuntimeError("broken")

    jobs = make_jobs(tasks=[asyncjobs.Task("t", broken, retries=3, on_fail=stop)])
    job = await jobs.queue(task="t")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    await assert_cancelled(jobs, job.id)
    assert (await jobs.get(job.id)).log == []  # type: ignore[union-attr]


async def test_job_cancelled_from_on_success_cancels_the_job(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[asyncjobs.Task("t", lambda: None, retries=3, on_success=stop)])
    job = await jobs.queue(task="t")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    await assert_cancelled(jobs, job.id)
    assert (await jobs.get(job.id)).log == []  # type: ignore[union-attr]


async def test_job_cancelled_from_should_restore_cancels_the_job(make_jobs: MakeJobs) -> None:
    def restore(*, job: asyncjobs.Job) -> bool:
        if job.total_tried:
            stop()
        return True

    retries = asyncjobs.Retries(attempts=3, should_restore=restore)
    step = asyncjobs.Task("step", lambda: {"done": True}, retries=retries)

    async def flow(*, tasks: Any, job: asyncjobs.Job) -> None:
        await tasks.step("1")
        await tasks.step("1")  # restored: should_restore is asked
        if job.total_tried == 0:
            raise RuntimeError("try again")

    jobs = make_jobs(tasks=[step], workflows=[asyncjobs.Workflow("flow", flow, retries=3)])
    job = await jobs.queue(workflow="flow")
    assert (await jobs.run()).job_status == {job.id: "error"}
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    await assert_cancelled(jobs, job.id, tried=1)
    assert len((await jobs.get(job.id)).log) == 1  # type: ignore[union-attr]


async def test_job_cancelled_from_before_schedule_skips_the_tick_quietly(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    outcomes: list[str] = []
    schedule = asyncjobs.Schedule(
        "* * * * *", before_schedule=stop, after_schedule=lambda *, status: outcomes.append(status)
    )
    jobs = make_jobs(tasks=[asyncjobs.Task("t", lambda: None, schedule=schedule)])
    with caplog.at_level(logging.ERROR):
        result = await jobs.handle_schedules()
    assert result == asyncjobs.ScheduleResult(skipped=[("t", "default")])
    assert (outcomes, await jobs.find(), caplog.records) == (["skipped"], [], [])


async def test_job_cancelled_from_a_concurrency_key_stores_a_cancelled_job(
    make_jobs: MakeJobs,
) -> None:
    ran: list[int] = []
    task = asyncjobs.Task(
        "t", lambda *, input: ran.append(input["n"]), concurrency=asyncjobs.Concurrency(stop)
    )
    jobs = make_jobs(tasks=[task])
    job = await jobs.queue(task="t", input={"n": 1})
    assert (job.status, job.error, job.concurrency_key) == ("cancelled", CANCELLED, None)
    await assert_cancelled(jobs, job.id)
    assert ran == []


async def test_any_other_exception_from_on_fail_is_logged_and_the_retry_stands(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_hook() -> None:
        raise RuntimeError("hook broke")

    async def broken() -> None:
        raise RuntimeError("broken")

    jobs = make_jobs(tasks=[asyncjobs.Task("t", broken, retries=1, on_fail=broken_hook)])
    job = await jobs.queue(task="t")
    assert (await jobs.run()).job_status == {job.id: "error"}
    assert "on_fail of task 't' raised" in caplog.text
    stored = await jobs.get(job.id)
    assert stored is not None
    assert (stored.status, stored.total_tried) == ("queued", 1)
