"""A job's output, stored with its completion; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pydantic

import asyncjobs
from tests.conftest import run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


class Receipt(pydantic.BaseModel):
    total: int


@asyncjobs.task("double")
async def double(*, input: dict) -> dict:
    return {"n": input["n"] * 2}


@asyncjobs.task("boom", retries=0)
async def boom(*, input: dict) -> dict:
    raise RuntimeError("boom")


@asyncjobs.workflow("as-dict")
async def as_dict(*, tasks: Any, input: dict) -> dict:
    doubled = await tasks.double("a", input={"n": input["n"]})
    return {"doubled": doubled["n"]}


@asyncjobs.workflow("as-model")
async def as_model(*, input: dict) -> Receipt:
    return Receipt(total=input["n"])


@asyncjobs.workflow("as-none")
async def as_none() -> None:
    return None


@asyncjobs.workflow("as-object", retries=0)
async def as_object() -> Any:
    return object()


async def _done(jobs: asyncjobs.Jobs, **queued: Any) -> asyncjobs.Job:
    job = await jobs.queue(**queued)
    assert job.output is None
    await run_until_idle(jobs)
    found = await jobs.get(job.id)
    assert found is not None
    return found


async def test_a_workflows_return_value_is_its_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], workflows=[as_dict, as_model, as_none])
    assert (await _done(jobs, workflow="as-dict", input={"n": 2})).output == {"doubled": 4}
    assert (await _done(jobs, workflow="as-model", input={"n": 7})).output == {"total": 7}
    assert (await _done(jobs, workflow="as-none")).output == {}


async def test_a_single_tasks_output_is_the_jobs_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double])
    first = await jobs.queue(task="double", input={"n": 3})
    second = await jobs.queue(task="double", input={"n": 5})
    await run_until_idle(jobs)  # one batch: both completions in one statement
    outputs = [(await jobs.get(job.id)) for job in (first, second)]
    assert [job.output for job in outputs if job] == [{"n": 6}, {"n": 10}]


async def test_a_failed_job_has_no_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[boom], workflows=[as_object])
    failed = await _done(jobs, task="boom")
    assert (failed.status, failed.output) == ("failed", None)
    unstorable = await _done(jobs, workflow="as-object")
    assert (unstorable.status, unstorable.output) == ("failed", None)
    assert "output of workflow 'as-object'" in (unstorable.error or {})["message"]
