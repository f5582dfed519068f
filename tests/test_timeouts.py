"""Timeouts: a handler running past its task's or workflow's limit fails with TimeoutError.

Limits are real elapsed time, so these tests use limits of a tenth of a second or so and
generous bounds on how long a run may take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

import asyncjobs
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
LIMIT = 0.1
HANG = 30.0  # far beyond every limit and the test's own timeout


async def hang(*, input: dict[str, Any]) -> dict[str, Any]:
    await anyio.sleep(input.get("sleep", HANG))
    return {"slept": True}


async def quick() -> dict[str, Any]:
    return {"quick": True}


HANGS = asyncjobs.Task("hangs", hang, timeout=LIMIT)
SLOW = asyncjobs.Task("slow", hang)  # no limit of its own
QUICK = asyncjobs.Task("quick", quick, timeout=timedelta(seconds=5))


async def _timed_run(jobs: asyncjobs.Jobs) -> tuple[asyncjobs.RunResult, float]:
    started = time.monotonic()
    result = await jobs.run()
    return result, time.monotonic() - started


async def _stored(jobs: asyncjobs.Jobs, job_id: int) -> asyncjobs.Job:
    job = await jobs.get(job_id)
    assert job is not None
    return job


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), True, "1", timedelta(0)])
def test_a_definition_refuses_a_timeout_that_is_not_a_positive_duration(bad: Any) -> None:
    with pytest.raises(ValueError, match="task 'x' timeout"):
        asyncjobs.Task("x", quick, timeout=bad)
    with pytest.raises(ValueError, match="workflow 'y' timeout"):
        asyncjobs.Workflow("y", quick, timeout=bad)


def test_a_timeout_is_kept_in_seconds() -> None:
    assert (HANGS.timeout, QUICK.timeout, SLOW.timeout) == (LIMIT, 5.0, None)
    assert asyncjobs.workflow("w", timeout=2)(quick).timeout == 2.0


async def test_a_task_past_its_timeout_fails_with_timeout_error(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[HANGS, QUICK])
    job = await jobs.queue(task="hangs")
    fine = await jobs.queue(task="quick")
    result, took = await _timed_run(jobs)
    assert result.job_status == {job.id: "error-reached-max-retries", fine.id: "success"}
    assert took < 10
    failed = await _stored(jobs, job.id)
    assert (failed.status, failed.total_tried, failed.processing_until) == ("failed", 1, None)
    assert failed.error is not None and failed.error["name"] == "TimeoutError"
    assert "timed out after 0.1 s" in failed.error["message"]
    assert failed.log[0].state == "failed"


async def test_a_timeout_counts_as_a_try_under_the_retry_rules(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[asyncjobs.Task("hangs", hang, timeout=LIMIT, retries=1)])
    job = await jobs.queue(task="hangs", input={"sleep": HANG})
    assert (await jobs.run()).job_status == {job.id: "error"}
    again = await _stored(jobs, job.id)
    assert (again.status, again.total_tried, again.processing_until) == ("queued", 1, None)
    clock.advance(hours=1)
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    assert (await _stored(jobs, job.id)).total_tried == 2


async def test_a_sync_handler_fails_at_the_timeout_and_its_late_result_is_dropped(
    make_jobs: MakeJobs,
) -> None:
    release, returned = threading.Event(), threading.Event()

    def blocking() -> dict[str, Any]:
        release.wait(HANG)
        returned.set()
        return {"late": True}

    jobs = make_jobs(tasks=[asyncjobs.Task("blocking", blocking, timeout=LIMIT)])
    job = await jobs.queue(task="blocking")
    result, took = await _timed_run(jobs)
    release.set()
    await anyio.to_thread.run_sync(returned.wait, 10)
    assert result.job_status == {job.id: "error-reached-max-retries"} and took < 10
    failed = await _stored(jobs, job.id)
    assert failed.status == "failed" and failed.output is None
    assert failed.error is not None and failed.error["name"] == "TimeoutError"


async def test_a_tasks_timeout_bounds_each_of_its_steps_in_a_workflow(
    make_jobs: MakeJobs,
) -> None:
    async def flow(*, tasks: Any) -> None:
        await tasks.quick("first")
        await tasks.hangs("second")

    jobs = make_jobs(tasks=[HANGS, QUICK], workflows=[asyncjobs.Workflow("flow", flow)])
    job = await jobs.queue(workflow="flow")
    result, took = await _timed_run(jobs)
    assert result.job_status == {job.id: "error-reached-max-retries"} and took < 10
    failed = await _stored(jobs, job.id)
    assert failed.error is not None and failed.error["name"] == "TimeoutError"
    assert [(e.task_id, e.state) for e in failed.log] == [
        ("first", "succeeded"),
        ("second", "failed"),
    ]


async def test_a_workflows_timeout_bounds_the_whole_attempt(make_jobs: MakeJobs) -> None:
    seen: list[str] = []

    async def flow(*, tasks: Any) -> None:
        await tasks.quick("first")
        try:
            await tasks.slow("second")
        except Exception as exc:  # a timeout of the workflow is not a step's failure
            seen.append(type(exc).__name__)

    workflow = asyncjobs.Workflow("flow", flow, timeout=0.2)
    jobs = make_jobs(tasks=[SLOW, QUICK], workflows=[workflow])
    job = await jobs.queue(workflow="flow")
    result, took = await _timed_run(jobs)
    assert result.job_status == {job.id: "error-reached-max-retries"} and took < 10
    failed = await _stored(jobs, job.id)
    assert (failed.status, failed.processing_until, seen) == ("failed", None, [])
    assert failed.error is not None and failed.error["name"] == "TimeoutError"
    assert "workflow 'flow' timed out after 0.2 s" in failed.error["message"]
    assert [(e.task_id, e.state) for e in failed.log] == [("first", "succeeded")]


async def test_a_step_list_workflow_has_a_timeout_too(make_jobs: MakeJobs) -> None:
    steps = [{"id": "wait", "task": "slow"}]
    jobs = make_jobs(tasks=[SLOW], workflows=[asyncjobs.Workflow("steps", steps, timeout=LIMIT)])
    job = await jobs.queue(workflow="steps")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    failed = await _stored(jobs, job.id)
    assert failed.error is not None and failed.error["name"] == "TimeoutError"


async def test_a_cancel_during_a_timed_task_is_a_cancel_not_a_timeout(
    make_jobs: MakeJobs,
) -> None:
    started = anyio.Event()

    async def waits() -> None:
        started.set()
        await anyio.sleep(HANG)

    jobs = make_jobs(tasks=[asyncjobs.Task("waits", waits, timeout=20)])
    job = await jobs.queue(task="waits")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await started.wait()
        assert await jobs.cancel_by_id(job.id)
    cancelled = await _stored(jobs, job.id)
    assert cancelled.status == "cancelled"
    assert cancelled.error is not None and cancelled.error["name"] != "TimeoutError"


async def test_a_stop_during_a_timed_task_hands_the_job_back_untried(
    make_jobs: MakeJobs,
) -> None:
    started = anyio.Event()

    async def waits() -> None:
        started.set()
        await anyio.sleep(HANG)

    jobs = make_jobs(tasks=[asyncjobs.Task("waits", waits, timeout=20)])
    job = await jobs.queue(task="waits")
    await jobs.start(auto_run=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await started.wait()
        await jobs.stop(timeout=0.05)
    await jobs.start(auto_run=False)
    back = await _stored(jobs, job.id)
    assert (back.status, back.total_tried, back.error) == ("queued", 0, None)
