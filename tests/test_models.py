"""make_job(): the Job built from a stored row, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import asyncjobs
from asyncjobs.models import (
    FOREVER,
    Job,
    JobLogEntry,
    fold_task_status,
    job_status,
    made_job,
    make_job,
)
from asyncjobs.queueing import prepare_rows
from tests.conftest import FakeClock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("step")
async def step(*, input: dict) -> dict:
    if input.get("fail"):
        raise RuntimeError("step failed")
    return {"seen": input.get("n")}


@asyncjobs.workflow("two-steps")
async def two_steps(*, input: dict, tasks: Any) -> None:
    await tasks.step("a", input={"n": 1})
    await tasks.step("b", input={"fail": input.get("fail", False)})


def validated_job(values: Mapping[str, Any], now: datetime) -> Job:
    """Every field validated by the model's constructor: what make_job must equal."""
    log = [JobLogEntry.model_validate(entry) for entry in values.get("log") or ()]
    fields = {k: v for k, v in values.items() if k in Job.model_fields and k != "log"}
    fields["input"] = fields.get("input") or {}
    fields["meta"] = fields.get("meta") or {}
    return Job(**fields, log=log, task_status=fold_task_status(log), status=job_status(values, now))


async def test_jobs_from_stored_rows_equal_fully_validated_ones(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[step], workflows=[two_steps])
    await jobs.queue(task="step", input={"n": 3}, meta={"m": [1, {"x": None}]})
    await jobs.queue(workflow="two-steps", wait_until=clock.now + timedelta(minutes=1))
    clock.advance(minutes=2)
    await jobs.queue(workflow="two-steps", input={"fail": True})
    await jobs.queue(workflow="two-steps")
    await run_until_idle(jobs)
    await jobs.queue_many([{"task": "step"}, {"workflow": "two-steps", "queue": "q"}])
    rows = await jobs.store.find(None, limit=100, order="created_at", now=clock.now)
    assert {r["has_error"] for r in rows} == {True, False}
    assert any(r["log"] for r in rows) and any(not r["log"] for r in rows)
    for row in rows:
        built, expected = make_job(row, clock.now), validated_job(row, clock.now)
        assert built == expected
        assert built.model_dump() == expected.model_dump()
        assert built.model_fields_set == expected.model_fields_set
        trusted = made_job(row, clock.now)  # built without validating: the same Job
        assert trusted == expected and trusted.model_dump() == expected.model_dump()
        assert trusted.model_fields_set == expected.model_fields_set
    plain = next(row for row in rows if not row["log"])
    suspended = plain | {"wait_until": FOREVER, "suspended": True}
    assert made_job(suspended, clock.now) == validated_job(suspended, clock.now).model_copy(
        update={"wait_until": None}
    )


async def test_inserted_rows_build_fully_validated_jobs(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[step], workflows=[two_steps])
    await jobs.start()
    items = [
        {"task": "step", "input": {"n": 1}, "wait_until": clock.now + timedelta(hours=1)},
        {"workflow": "two-steps", "meta": {"k": ["v", 2.5]}},
    ]
    rows, supersede = await prepare_rows(jobs.registry, items, clock.now)
    stored = await jobs.store.insert_jobs(rows, supersede=supersede, now=clock.now)
    for row in stored:
        assert make_job(row, clock.now).model_dump() == validated_job(row, clock.now).model_dump()
        assert (await jobs.get(row["id"])) == make_job(row, clock.now)


def test_job_rows_have_the_columns_of_the_jobs_table_in_order() -> None:
    from asyncjobs.models import JobRow
    from asyncjobs.storage.tables import jobs

    assert JobRow._fields == tuple(column.name for column in jobs.c)


async def test_a_job_row_builds_the_same_job_as_its_mapping(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    from asyncjobs.models import JobRow

    jobs = make_jobs(tasks=[step], workflows=[two_steps])
    await jobs.queue(workflow="two-steps", input={"fail": True})
    await run_until_idle(jobs)
    (row,) = await jobs.store.find(None, limit=1, order="created_at", now=clock.now)
    typed = JobRow.of(row)
    assert JobRow.of(typed) is typed and typed.slug == "two-steps"
    assert make_job(typed, clock.now) == make_job(row, clock.now)
