"""Completed jobs whose meta asks to be kept outlive ``delete_job_on_complete``; SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import asyncjobs
from asyncjobs.keeping import KEEP_KEY, kept

MakeJobs = Callable[..., asyncjobs.Jobs]
KEEP = {KEEP_KEY: True}


@asyncjobs.task("double")
async def double(*, input: dict) -> dict:
    return {"n": input["n"] * 2}


async def test_a_job_asking_to_be_kept_is_kept_and_the_others_deleted(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], delete_job_on_complete=True)
    kept_job = await jobs.queue(task="double", input={"n": 2}, meta=KEEP)
    deleted = await jobs.queue(task="double", input={"n": 3})
    result = await jobs.run()  # one batch, so one group commit holds both
    assert result.job_status == {kept_job.id: "success", deleted.id: "success"}
    done = await jobs.get(kept_job.id)
    assert done is not None and (done.status, done.output) == ("completed", {"n": 4})
    assert await jobs.get(deleted.id) is None


async def test_a_batch_of_kept_jobs_only_is_completed(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], delete_job_on_complete=True)
    queued = [await jobs.queue(task="double", input={"n": n}, meta=KEEP) for n in (1, 2)]
    await jobs.run()
    assert [(await jobs.get(job.id)) is not None for job in queued] == [True, True]


async def test_every_job_is_kept_when_completed_jobs_are(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], delete_job_on_complete=False)
    queued = await jobs.queue(task="double", input={"n": 1}, meta={KEEP_KEY: False})
    await jobs.run()
    assert await jobs.get(queued.id) is not None


def test_only_true_asks_to_be_kept() -> None:
    assert [kept(m) for m in ({KEEP_KEY: True}, {KEEP_KEY: 1}, {KEEP_KEY: "yes"}, None, [])] == [
        True,
        False,
        False,
        False,
        False,
    ]
