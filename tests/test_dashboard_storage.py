"""The dashboard's statements on both databases: counts, caps, charts, pages, bulk actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

import asyncjobs
from asyncjobs.storage import dashboard_filters, dashboard_stats
from asyncjobs.storage.dashboard import Count, DashboardQueries
from asyncjobs.storage.dashboard_stats import QueueStats
from tests.conftest import FakeClock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


def queries(jobs: asyncjobs.Jobs) -> DashboardQueries:
    return DashboardQueries(jobs.store)


async def stats_of(jobs: asyncjobs.Jobs, queue: str, now: Any) -> QueueStats:
    return (await queries(jobs).queue_stats([queue], now))[queue]


@asyncjobs.task("work")
async def work(*, input: dict[str, Any]) -> None:
    if input.get("fail"):
        raise RuntimeError("boom")


@asyncjobs.workflow("flow")
async def flow(*, input: dict[str, Any], tasks: Any) -> None:
    await tasks["work"]("one", input=input)


@pytest.fixture
async def jobs(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    made = make_jobs(tasks=[work], workflows=[flow])
    await made.start(auto_run=False)
    return made


async def mixed(jobs: asyncjobs.Jobs, clock: FakeClock) -> dict[str, list[int]]:
    """Jobs of every status on queue ``q``, plus one on ``other``: ids by status."""
    ids: dict[str, list[int]] = {}

    async def add(status: str, **item: Any) -> int:
        job = await jobs.queue(task="work", queue="q", **item)
        ids.setdefault(status, []).append(job.id)
        return job.id

    for _ in range(3):
        await add("completed", input={})
    await add("failed", input={"fail": True})
    await run_until_idle(jobs, queue="q")
    await add("queued", input={})
    await add("waiting", input={}, wait_until=clock() + timedelta(hours=1))
    cancelled = await add("cancelled", input={})
    await jobs.cancel_by_id(cancelled)
    await jobs.queue(task="work", input={}, queue="other")
    return ids


def counts(stats: QueueStats) -> dict[str, int]:
    return {name: count.value for name, count in stats.counts.items() if count.value}


async def test_queues_are_every_queue_holding_a_job(jobs: asyncjobs.Jobs, clock: FakeClock) -> None:
    assert await queries(jobs).queues() == []
    await mixed(jobs, clock)
    assert await queries(jobs).queues() == ["other", "q"]


async def test_queue_stats_count_each_status(jobs: asyncjobs.Jobs, clock: FakeClock) -> None:
    await mixed(jobs, clock)
    clock.advance(30)
    stats = await stats_of(jobs, "q", clock())
    assert counts(stats) == {"completed": 3, "failed": 1, "queued": 1, "waiting": 1, "cancelled": 1}
    assert not any(count.capped for count in stats.counts.values())
    assert stats.oldest_due == clock() - timedelta(seconds=30)


async def test_a_leased_job_counts_as_processing(jobs: asyncjobs.Jobs, clock: FakeClock) -> None:
    job = await jobs.queue(task="work", input={}, queue="q")
    await jobs.store.claim(
        asyncjobs.storage.Claim(
            now=clock(),
            until=clock() + timedelta(minutes=1),
            token="t",
            limit=1,
            order="created_at",
            queue="q",
        )
    )
    stats = await stats_of(jobs, "q", clock())
    assert counts(stats) == {"processing": 1}
    assert stats.oldest_due is None
    assert job.id


async def test_counts_stop_at_the_cap(
    jobs: asyncjobs.Jobs, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_filters, "CAP", 3)
    await jobs.queue_many([{"task": "work", "input": {}, "queue": "q"} for _ in range(5)])
    stats = await stats_of(jobs, "q", clock())
    assert stats.counts["queued"] == Count(3, capped=True)
    assert await queries(jobs).count({"queue": "q"}, clock()) == Count(3, capped=True)
    assert await queries(jobs).count({"status": "failed"}, clock()) == Count(0)


async def test_the_chart_counts_completions_and_failures_per_minute(
    jobs: asyncjobs.Jobs, clock: FakeClock
) -> None:
    await jobs.queue(task="work", input={}, queue="q")
    await run_until_idle(jobs, queue="q")  # completed at 12:00:00
    clock.advance(minutes=10, seconds=5)
    await jobs.queue(task="work", input={"fail": True}, queue="q")
    await jobs.queue(task="work", input={}, queue="q")
    await run_until_idle(jobs, queue="q")  # at 12:10:05
    clock.advance(minutes=20)
    stats = await stats_of(jobs, "q", clock())  # since 11:30:05
    assert sum(stats.completed) == 2 and sum(stats.failed) == 1
    assert stats.completed[29] == 1 and stats.completed[40] == 1  # 12:00:00, 12:10:05
    assert stats.failed[40] == 1
    assert not stats.failed_partial
    clock.advance(minutes=40)  # the 12:00 completion falls out of the hour
    later = await stats_of(jobs, "q", clock())
    assert sum(later.completed) == 1 and later.completed[0] == 1


async def test_the_failure_chart_says_when_it_only_saw_a_sample(
    jobs: asyncjobs.Jobs, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dashboard_stats, "CHART_SAMPLE", 2)
    for _ in range(3):
        await jobs.queue(task="work", input={"fail": True}, queue="q")
    await run_until_idle(jobs, queue="q")
    stats = await stats_of(jobs, "q", clock())
    assert stats.failed_partial and sum(stats.failed) == 2
    assert stats.counts["failed"] == Count(3)


@pytest.mark.parametrize("dense", [False, True])
async def test_pages_walk_newest_first_by_id(
    jobs: asyncjobs.Jobs, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, dense: bool
) -> None:
    if dense:  # beyond the cap the planner walks the primary key instead of sorting
        monkeypatch.setattr(dashboard_filters, "CAP", 2)
    made = await jobs.queue_many([{"task": "work", "input": {"n": n}} for n in range(7)])
    ids = [job.id for job in made]
    read = queries(jobs)
    first = await read.page(None, now=clock(), limit=3)
    assert [r["id"] for r in first.rows] == ids[:-4:-1] and first.more
    second = await read.page(None, now=clock(), limit=3, before=first.rows[-1]["id"])
    assert [r["id"] for r in second.rows] == ids[3:0:-1] and second.more
    last = await read.page(None, now=clock(), limit=3, before=second.rows[-1]["id"])
    assert [r["id"] for r in last.rows] == ids[:1] and not last.more
    back = await read.page(None, now=clock(), limit=3, after=last.rows[0]["id"])
    assert [r["id"] for r in back.rows] == ids[3:0:-1] and back.more
    assert "log" not in first.rows[0]


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"status": "failed"}, ["failed"]),
        ({"status": "cancelled"}, ["cancelled"]),
        ({"status": "completed"}, ["completed"]),
        ({"status": "waiting", "queue": "q"}, ["waiting"]),
        ({"status": "queued", "queue": "q"}, ["queued"]),
        ({"queue": "q", "task_slug": "work"}, ["*"]),
        ({"slug": "work", "status": "completed"}, ["completed"]),
    ],
)
async def test_pages_filter_by_status_queue_and_slug(
    jobs: asyncjobs.Jobs,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    where: dict[str, Any],
    expected: list[str],
    dense: bool,
) -> None:
    if dense:
        monkeypatch.setattr(dashboard_filters, "CAP", 0)
    ids = await mixed(jobs, clock)
    page = await queries(jobs).page(where, now=clock(), limit=50)
    want = sorted(
        (i for s, found in ids.items() for i in found if s in expected or "*" in expected),
        reverse=True,
    )
    assert [r["id"] for r in page.rows] == want


async def test_retry_remakes_matching_failed_and_cancelled_jobs(
    jobs: asyncjobs.Jobs, clock: FakeClock
) -> None:
    ids = await mixed(jobs, clock)
    changed = await queries(jobs).retry({"queue": "q"}, clock())
    assert sorted(changed) == sorted((i, "q") for i in ids["failed"] + ids["cancelled"])
    stats = await stats_of(jobs, "q", clock())
    assert counts(stats) == {"completed": 3, "queued": 3, "waiting": 1}


async def test_make_due_brings_waiting_jobs_forward_and_leaves_others(
    jobs: asyncjobs.Jobs, clock: FakeClock
) -> None:
    ids = await mixed(jobs, clock)
    changed = await queries(jobs).make_due({"queue": "q"}, clock())
    assert sorted(i for i, _ in changed) == sorted(ids["queued"] + ids["waiting"])
    waiting = await jobs.get(ids["waiting"][0])
    queued = await jobs.get(ids["queued"][0])
    assert waiting is not None and waiting.status == "queued" and waiting.wait_until == clock()
    assert queued is not None and queued.wait_until is None


async def test_a_job_has_no_children_before_parents_exist(jobs: asyncjobs.Jobs) -> None:
    job = await jobs.queue(task="work", input={})
    assert await queries(jobs).children(job.id, 10) == []


async def test_a_jobs_signals_oldest_first_up_to_the_limit(
    jobs: asyncjobs.Jobs, clock: FakeClock
) -> None:
    job = await jobs.queue(task="work", input={})
    other = await jobs.queue(task="work", input={})
    for n in range(3):
        assert await jobs.signal(job.id, "go", {"n": n})
        clock.advance(1)
    assert await jobs.signal(other.id, "go")
    found = await queries(jobs).signals(job.id, 2)
    assert [(s["topic"], s["payload"]) for s in found] == [("go", {"n": 0}), ("go", {"n": 1})]
    sent = [clock() - timedelta(seconds=3 - n) for n in range(2)]
    assert [s["created_at"] for s in found] == sent
    assert found[0]["id"] < found[1]["id"]


async def test_schedule_ticks_of_no_keys_are_none(jobs: asyncjobs.Jobs) -> None:
    assert await queries(jobs).schedule_ticks([]) == {}


async def test_reads_plan_for_their_values_and_leave_the_connection_as_it_was(
    jobs: asyncjobs.Jobs, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("only PostgreSQL switches prepared statements to generic plans")
    async with queries(jobs)._read() as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "force_custom_plan"
    async with jobs.store.read() as conn:
        assert (await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar() == "auto"


@pytest.mark.parametrize("status", ["queued", "completed", "failed", "cancelled"])
async def test_a_status_count_on_a_queue_reads_that_statuss_partial_index(
    jobs: asyncjobs.Jobs, backend: str, clock: FakeClock, status: str
) -> None:
    """Without statistics, SQLite picks among indexes that serve a query alike by the order
    they were created in; only one index may serve each of these counts."""
    if backend != "sqlite":
        pytest.skip("PostgreSQL plans from statistics")
    found = dashboard_filters.conditions({"status": status, "queue": "q"}, clock())
    where = found.parts["status"].branches[0]
    stmt = select(dashboard_filters.capped_count(where))
    async with jobs.store.read() as conn:
        sql = str(stmt.compile(conn.sync_connection, compile_kwargs={"literal_binds": True}))
        plan = " ".join(row[3] for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + sql))
    index = {"queued": "claim"}.get(status, status)
    assert f"USING COVERING INDEX ix_asyncjobs_jobs_{index} " in plan or (
        f"USING INDEX ix_asyncjobs_jobs_{index} " in plan
    ), plan
