"""``Jobs.retry_by_id``: a failed or cancelled job runs again and keeps its succeeded steps."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncjobs
from tests.conftest import run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]
calls: list[str] = []
broken = {"mail": True}


@asyncjobs.task("fetch", retries=0)
async def fetch() -> dict[str, str]:
    calls.append("fetch")
    return {"name": "Ada"}


@asyncjobs.task("mail", retries=0)
async def mail() -> dict[str, bool]:
    calls.append("mail")
    if broken["mail"]:
        raise ConnectionError("mail server down")
    return {"sent": True}


@asyncjobs.workflow("welcome")
async def welcome(*, tasks: Any) -> None:
    await tasks["fetch"]("1")
    await tasks["mail"]("2")


async def failed_job(make_jobs: MakeJobs) -> tuple[asyncjobs.Jobs, asyncjobs.Job]:
    calls.clear()
    broken["mail"] = True
    jobs = make_jobs(tasks=[fetch, mail], workflows=[welcome])
    job = await jobs.queue(workflow="welcome")
    await run_until_idle(jobs)
    return jobs, job


async def test_a_retried_failed_job_runs_again_without_its_succeeded_steps(
    make_jobs: MakeJobs,
) -> None:
    jobs, job = await failed_job(make_jobs)
    woken: list[tuple[str, object]] = []
    jobs.wake.subscribe(lambda queue, due: woken.append((queue, due)))
    broken["mail"] = False

    assert await jobs.retry_by_id(job.id) is True
    retried = await jobs.get(job.id)
    assert retried is not None
    assert (retried.status, retried.error, retried.has_error) == ("queued", None, False)
    assert len(retried.log) == 2 and retried.total_tried == 1
    assert woken == [(job.queue, None)]  # once, runnable now

    await run_until_idle(jobs)

    done = await jobs.get(job.id)
    assert done is not None and done.status == "completed"
    assert calls == ["fetch", "mail", "mail"]


async def test_a_cancelled_job_can_be_retried(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[fetch, mail], workflows=[welcome])
    job = await jobs.queue(workflow="welcome")
    await jobs.cancel_by_id(job.id)

    assert await jobs.retry_by_id(job.id) is True
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_only_failed_or_cancelled_jobs_are_retried(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[fetch, mail], workflows=[welcome])
    queued = await jobs.queue(task="fetch")
    done = await jobs.queue(task="fetch", queue="other")
    await jobs.run(queue="other")

    assert await jobs.retry_by_id(queued.id) is False
    assert await jobs.retry_by_id(done.id) is False
    assert await jobs.retry_by_id(999) is False
    statuses = [(j.id, j.status) for j in await jobs.find(order="created_at")]
    assert statuses == [(queued.id, "queued"), (done.id, "completed")]
