"""Priorities: higher runs first, then the processing order; checked at definition and queue."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

import asyncjobs
from tests.conftest import FakeClock
from tests.test_cli import make_cli

MakeJobs = Callable[..., asyncjobs.Jobs]


async def noop() -> None:
    return None


PLAIN = asyncjobs.Task("plain", noop)
URGENT = asyncjobs.Task("urgent", noop, priority=50)
FLOW = asyncjobs.Workflow("flow", noop, priority=-5)


def _jobs(make_jobs: MakeJobs, **options: Any) -> asyncjobs.Jobs:
    return make_jobs(tasks=[PLAIN, URGENT], workflows=[FLOW], **options)


async def _run_order(jobs: asyncjobs.Jobs) -> list[int]:
    ran: list[int] = []
    while not (result := await jobs.run(limit=1, all_queues=True)).no_jobs_remaining:
        ran.extend(result.job_status)
    return ran


@pytest.mark.parametrize("bad", [101, -101, True, 1.5, "3"])
def test_a_definition_refuses_a_priority_outside_minus_100_to_100(bad: Any) -> None:
    with pytest.raises(ValueError, match="task 'x' priority must be an int from -100 to 100"):
        asyncjobs.Task("x", noop, priority=bad)
    with pytest.raises(ValueError, match="workflow 'y' priority"):
        asyncjobs.Workflow("y", noop, priority=bad)


def test_definitions_keep_their_priority() -> None:
    assert (PLAIN.priority, URGENT.priority, FLOW.priority) == (0, 50, -5)
    steps = asyncjobs.Workflow("steps", [{"id": "a", "task": "plain"}], priority=7)
    assert steps.priority == 7
    assert asyncjobs.task("t", priority=100)(noop).priority == 100
    assert asyncjobs.workflow("w", priority=-100)(noop).priority == -100


async def test_queue_takes_the_definitions_priority_unless_given(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    plain, urgent, flow = [
        await jobs.queue(task="plain"),
        await jobs.queue(task="urgent"),
        await jobs.queue(workflow="flow"),
    ]
    given = await jobs.queue(task="urgent", priority=-100)
    assert [j.priority for j in (plain, urgent, flow, given)] == [0, 50, -5, -100]
    stored = await jobs.get(given.id)
    assert stored is not None and stored.priority == -100


@pytest.mark.parametrize("bad", [101, -101, True, 2.0, "1"])
async def test_queue_refuses_a_bad_priority_and_stores_nothing(
    make_jobs: MakeJobs, bad: Any
) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.ValidationError, match="priority must be an int") as info:
        await jobs.queue(task="plain", priority=bad)
    assert info.value.errors[0]["loc"] == ("priority",)
    with pytest.raises(asyncjobs.ValidationError, match="item 1: priority"):
        await jobs.queue_many([{"task": "plain"}, {"task": "plain", "priority": bad}])
    assert await jobs.find() == []


async def test_higher_priority_runs_first_then_the_processing_order(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = _jobs(make_jobs)
    ids = []
    for item in ({"task": "plain"}, {"workflow": "flow"}, {"task": "urgent"}, {"task": "plain"}):
        ids.append((await jobs.queue(**item)).id)  # type: ignore[arg-type]
        clock.advance(1)
    ids.append((await jobs.queue(task="plain", priority=50)).id)
    first_plain, flow, urgent, second_plain, late_urgent = ids
    assert await _run_order(jobs) == [urgent, late_urgent, first_plain, second_plain, flow]


async def test_priority_goes_before_a_descending_processing_order(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = _jobs(make_jobs, processing_order="-created_at")
    low = await jobs.queue_many([{"task": "plain", "priority": -1}, {"task": "plain"}])
    clock.advance(1)
    newest = await jobs.queue(task="plain", priority=-1)
    assert await _run_order(jobs) == [low[1].id, newest.id, low[0].id]


async def test_a_larger_claim_takes_the_highest_priorities(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    low = await jobs.queue_many([{"task": "plain", "priority": -3} for _ in range(3)])
    high = await jobs.queue_many([{"task": "plain", "priority": 3} for _ in range(2)])
    result = await jobs.run(limit=3)
    assert set(result.job_status) == {high[0].id, high[1].id, low[0].id}


async def test_keyed_claims_take_the_highest_priority_of_a_key_first(
    make_jobs: MakeJobs,
) -> None:
    keyed = asyncjobs.Task("keyed", noop, concurrency=lambda input: input["k"])
    jobs = make_jobs(tasks=[keyed])
    first = await jobs.queue(task="keyed", input={"k": "a"})
    second = await jobs.queue(task="keyed", input={"k": "a"}, priority=9)
    assert list((await jobs.run(limit=5)).job_status) == [second.id]
    assert list((await jobs.run(limit=5)).job_status) == [first.id]


async def test_where_and_find_filter_on_priority(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    plain = await jobs.queue(task="plain")
    urgent = await jobs.queue(task="urgent")
    assert [j.id for j in await jobs.find(where={"priority": 50})] == [urgent.id]
    assert [j.id for j in await jobs.find(where={"priority": 0})] == [plain.id]
    assert list((await jobs.run(where={"priority": 0})).job_status) == [plain.id]
    with pytest.raises(ValueError, match="must be an int"):
        await jobs.find(where={"priority": "high"})


async def test_a_transactional_queue_stores_the_priority(
    make_jobs: MakeJobs, database_url: str
) -> None:
    jobs = _jobs(make_jobs)
    await jobs.start(auto_run=False)
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            job = await jobs.queue(task="plain", priority=7, connection=conn)
            await conn.commit()
    finally:
        await engine.dispose()
    stored = await jobs.get(job.id)
    assert job.priority == 7 and stored is not None and stored.priority == 7


@pytest.mark.slow
async def test_the_cli_queues_with_a_priority(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = await make_cli(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", monkeypatch)
    try:
        printed = await cli.json("jobs", "queue", "hello", "--priority", "-7", "--app", "cliapp")
        refused = await cli("jobs", "queue", "hello", "--priority", "101", "--app", "cliapp")
        (job,) = await cli.jobs.find()
    finally:
        await cli.jobs.stop()
    assert printed["priority"] == -7 and job.priority == -7
    assert refused.returncode == 2 and "priority must be an int from -100 to 100" in refused.stderr


async def test_a_waiting_high_priority_job_does_not_hold_up_due_ones(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = _jobs(make_jobs)
    later = await jobs.queue(task="urgent", wait_until=clock.now + timedelta(minutes=1))
    due = await jobs.queue(task="plain")
    assert await _run_order(jobs) == [due.id]
    clock.advance(minutes=1)
    assert await _run_order(jobs) == [later.id]
