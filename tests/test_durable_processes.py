"""Durable waits across processes and time: a worker killed between a signal and its
consumption, autoRun woken at once by a signal or a child, and 1,000 sleeping jobs that cost
no statement while they sleep."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import event

import asyncjobs
from tests import proc_worker
from tests.conftest import FakeClock
from tests.test_processes import finish, start_worker, wait_for_line

MakeJobs = Callable[..., asyncjobs.Jobs]
SLEEPERS = 1_000


@asyncjobs.workflow("sleeper")
async def sleeper(*, sleep: Any) -> dict[str, bool]:
    await sleep("nap", 86_400)
    return {"woke": True}


@asyncjobs.workflow("waiter")
async def waiter(*, wait_for_signal: Any) -> Any:
    return await wait_for_signal("w", "go")


@asyncjobs.workflow("raiser")
async def raiser(*, run_child: Any) -> Any:
    return await run_child("c", workflow="waiter")


@pytest.mark.slow
@pytest.mark.timeout(60)
async def test_sigkill_between_a_signal_and_its_consumption(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "trace.txt"
    jobs = proc_worker.make_jobs(database_url)
    async with jobs.lifespan(auto_run=False):
        job = await jobs.queue(workflow="signalled")
        assert await jobs.signal(job.id, "go", {"n": 1})
        assert await jobs.signal(job.id, "go", {"n": 2})
        victim = start_worker(database_url, out, "stall")
        try:
            await wait_for_line(out, "step2")  # the first signal consumed, the second not yet
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        rescuer = start_worker(database_url, out, "rescue")
        assert await anyio.to_thread.run_sync(finish, rescuer) == 0
        done = await jobs.get(job.id)
    assert done is not None and done.status == "completed"
    assert done.output == {"first": {"n": 1}, "second": {"n": 2}}
    taken = [e.output["signal"] for e in done.log if e.task_slug == "wait_for_signal"]
    assert len(taken) == len(set(taken)) == 2
    assert [line for line in out.read_text().splitlines() if line.startswith("got")] == ["got 1 2"]


@pytest.mark.timeout(30)
async def test_a_signal_and_a_child_wake_autorun_at_once(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(
        workflows=[waiter, raiser],
        clock=None,
        auto_run=[asyncjobs.AutoRun(cron="0 0 1 1 *", all_queues=True)],
    )
    async with jobs.lifespan():
        job = await jobs.queue(workflow="raiser")
        with anyio.fail_after(10):
            while (
                not (children := await jobs.find(where={"status": "suspended"}))
                or len(children) < 2
            ):
                await anyio.sleep(0.02)
        child = next(j for j in children if j.parent_id == job.id)
        assert await jobs.signal(child.id, "go", {"ok": True})
        done = await jobs.wait(job.id, timeout=10)
    assert done is not None and done.output == {"ok": True}


async def drain(jobs: asyncjobs.Jobs) -> dict[int, str]:
    statuses: dict[int, str] = {}
    while not (result := await jobs.run(limit=500)).no_jobs_remaining:
        statuses.update(result.job_status)
    return statuses


@contextmanager
def counted(jobs: asyncjobs.Jobs) -> Iterator[list[str]]:
    """Every statement sent to the database: through SQLAlchemy and on held connections."""
    sent: list[str] = []
    store: Any = jobs.store
    engine = store.engine.sync_engine
    fetch = store.held.fetch

    def on_execute(*args: Any) -> None:
        sent.append(str(args[2]))

    async def counting_fetch(sql: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(sql)
        return await fetch(sql, *args, **kwargs)

    event.listen(engine, "before_cursor_execute", on_execute)
    store.held.fetch = counting_fetch
    try:
        yield sent
    finally:
        store.held.fetch = fetch
        event.remove(engine, "before_cursor_execute", on_execute)


@pytest.mark.timeout(120)
async def test_a_thousand_sleepers_cost_no_statement(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(workflows=[sleeper], auto_run=[asyncjobs.AutoRun(cron="0 0 1 1 *", limit=500)])
    created = await jobs.queue_many([{"workflow": "sleeper"}] * SLEEPERS)
    first = await drain(jobs)
    assert first == {job.id: "suspended" for job in created}
    async with jobs.lifespan():
        for _ in range(50):  # autoRun's first tick (a claim, the schedules) is over
            with counted(jobs) as first_tick:
                await anyio.sleep(0.3)
            if not first_tick:
                break
        with counted(jobs) as sent:
            clock.advance(3_600)
            await anyio.sleep(1.0)  # autoRun is live and idle: the sleepers are not looked at
            assert sent == []
        clock.advance(86_400)
        statuses = await drain(jobs)
    assert statuses == {job.id: "success" for job in created}
