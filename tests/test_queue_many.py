"""queue_many(): edge cases alike on SQLite and PostgreSQL, and every queue() option per item."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

import asyncjobs
from asyncjobs.storage.sqlite import MAX_STATEMENT_ROWS
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
SIZES = [3, MAX_STATEMENT_ROWS + 1]  # one statement, and several in one transaction (SQLite)


def _key(*, input: dict[str, Any]) -> str | None:
    return input.get("key")


plain = asyncjobs.Task("plain", lambda: None)
keyed = asyncjobs.Task("keyed", lambda: None, concurrency=_key)
superseding = asyncjobs.Task(
    "superseding", lambda: None, concurrency=asyncjobs.Concurrency(_key, supersedes=True)
)
flow = asyncjobs.Workflow("flow", lambda: None, queue="flows")


def _jobs(make_jobs: MakeJobs, **options: Any) -> asyncjobs.Jobs:
    return make_jobs(tasks=[plain, keyed, superseding], workflows=[flow], **options)


async def test_an_empty_batch_stores_nothing_and_wakes_nobody(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    woken: list[object] = []
    jobs.wake.subscribe(lambda queue, due: woken.append((queue, due)))
    assert await jobs.queue_many([]) == []
    assert (await jobs.find(), woken) == ([], [])


@pytest.mark.parametrize("size", SIZES)
async def test_every_option_is_honoured_per_item(
    make_jobs: MakeJobs, clock: FakeClock, size: int
) -> None:
    jobs = _jobs(make_jobs)
    later = clock.now + timedelta(hours=1)
    special = [
        {"task": plain, "queue": "q1", "meta": {"m": 1}},
        {"workflow": "flow", "input": {"n": 1}, "wait_until": later},
        {"task": "keyed", "input": {"key": "k"}},
    ]
    items = special + [{"task": "plain", "input": {"n": n}} for n in range(size - len(special))]
    created = await jobs.queue_many(items)
    stored = {job.id: job for job in await jobs.find(limit=size)}
    first, second, third = (stored[job.id] for job in created[:3])
    assert (first.task_slug, first.queue, first.meta, first.status) == (
        "plain",
        "q1",
        {"m": 1},
        "queued",
    )
    assert (second.workflow_slug, second.queue, second.input) == ("flow", "flows", {"n": 1})
    assert (second.wait_until, second.status) == (later, "waiting")
    assert (third.concurrency_key, third.meta) == ("k", {})
    assert [job.input for job in created[3:]] == [{"n": n} for n in range(size - 3)]
    assert [stored[job.id] for job in created] == created


@pytest.mark.parametrize("size", SIZES)
async def test_keys_repeated_in_one_batch(make_jobs: MakeJobs, size: int) -> None:
    jobs = _jobs(make_jobs)
    await jobs.queue(task="superseding", input={"key": "a", "n": -1})
    items = [
        {"task": slug, "input": {"key": prefix + "ab"[n % 2], "n": n}}
        for n in range(size)
        for slug, prefix in (("keyed", "x"), ("superseding", ""))
    ]
    await jobs.queue_many(items)
    stored = await jobs.find(limit=3 * size)
    kept = sorted((job.input["key"], job.input["n"]) for job in stored if job.slug == "superseding")
    newest = {"ab"[n % 2]: n for n in range(size)}  # the pending job queued before is gone
    assert kept == sorted(newest.items())
    assert len([job for job in stored if job.slug == "keyed"]) == size


async def test_per_item_access_is_checked_with_the_items_request(make_jobs: MakeJobs) -> None:
    asked: list[object] = []

    def allow(*, request: Any) -> bool:
        asked.append(request)
        return bool(request.get("admin"))

    jobs = _jobs(make_jobs, access=asyncjobs.Access(queue=allow))
    items = [
        {"task": "plain"},
        {"task": "plain", "override_access": False, "request": {"admin": False}},
    ]
    with pytest.raises(asyncjobs.Forbidden, match="item 1"):
        await jobs.queue_many(items)
    assert (asked, await jobs.find()) == ([{"admin": False}], [])
    items[1]["request"] = {"admin": True}
    assert len(await jobs.queue_many(items)) == 2


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ({"task": "plain"}, "a list of dicts"),
        ("plain", "a list of dicts"),
        ([{"task": "plain"}, "plain"], "item 1 must be a dict"),
        ([{"task": "plain"}, None], "item 1 must be a dict"),
        ([{"task": "plain"}, {"task": "plain", "retries": 3}], "item 1: unknown .* retries"),
    ],
)
async def test_malformed_batches_are_refused_naming_the_problem(
    make_jobs: MakeJobs, items: Any, message: str
) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises((TypeError, ValueError), match=message):
        await jobs.queue_many(items)
    assert await jobs.find() == []


class Order(BaseModel):
    sku: str
    count: int = 1
    at: datetime | None = None


ordering = asyncjobs.Task("ordering", lambda: None, input_schema=Order)


def _fields(job: asyncjobs.Job) -> dict[str, tuple[type, Any]]:
    return {name: (type(value), value) for name, value in job}


@pytest.mark.parametrize("size", SIZES)
async def test_the_jobs_returned_are_the_jobs_stored(
    make_jobs: MakeJobs, clock: FakeClock, size: int
) -> None:
    jobs = make_jobs(tasks=[plain, keyed, ordering], workflows=[flow])
    held = await jobs.queue(task="plain", idempotency_key="taken", meta={"first": True})
    later = clock.now + timedelta(minutes=5)
    special: list[dict[str, Any]] = [
        {"task": "ordering", "input": {"sku": "é-1", "at": clock.now}, "meta": {"m": [1, None]}},
        {"workflow": "flow", "input": {"f": 0.5, "big": 2**60}, "wait_until": later},
        {"task": plain, "queue": "q1", "priority": 7, "idempotency_key": "new"},
        {"task": "plain", "idempotency_key": "taken"},  # answered by the job stored before
        {"task": "plain", "idempotency_key": "new"},  # by the batch's own earlier row
        {"task": "keyed", "input": {"key": "k"}},
    ]
    items = special + [{"task": "plain", "input": {"n": n}} for n in range(size - len(special))]
    created = await jobs.queue_many(items)
    assert created[3] == held and created[4] == created[2]
    for job in created:
        stored = await jobs.get(job.id)
        assert stored is not None
        assert _fields(job) == _fields(stored)
        assert job == stored and job.model_fields_set == stored.model_fields_set
        assert job.model_dump_json() == stored.model_dump_json()
