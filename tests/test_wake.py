"""Instant pickup: wakes across processes (PostgreSQL NOTIFY), at due times, and for backlogs.

Every entry here has a yearly cron, so only a wake can explain a job running promptly.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

import asyncjobs
from asyncjobs import health
from asyncjobs.jobs import utcnow
from asyncjobs.storage.notify import parse
from tests.test_autorun import Recorder, auto, until

MakeJobs = Callable[..., asyncjobs.Jobs]


def realtime(make_jobs: MakeJobs, *tasks: asyncjobs.Task, **options: Any) -> asyncjobs.Jobs:
    return make_jobs(tasks=list(tasks), clock=utcnow, **options)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_job_queued_by_another_instance_wakes_the_runner(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    runner = realtime(make_jobs, recorder.task, auto_run=auto())
    producer = realtime(make_jobs, recorder.task)
    await runner.start()
    await producer.queue(task="record", input={"n": 1})
    assert await recorder.wait_for(1, within=5) < 5
    assert recorder.ran[0][0] is runner


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_the_listener_comes_back_after_its_connection_dies(make_jobs: MakeJobs) -> None:
    from sqlalchemy import text

    recorder = Recorder()
    runner = realtime(make_jobs, recorder.task, auto_run=auto())
    producer = realtime(make_jobs, recorder.task)
    await runner.start()
    await producer.queue(task="record", input={"n": 1})
    await recorder.wait_for(1)
    assert listener(runner) == "listening"
    async with producer.store.write() as conn:
        killed = await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = :name AND query LIKE 'LISTEN%'"
            ),
            {"name": runner.store.name},
        )
        assert killed.scalars().all() == [True]
    # /health says so while it is down: it notices as the connection's end reaches it, and
    # listens again 0.5 s later.
    await until(lambda: listener(runner) == "reconnecting")
    await until(lambda: listener(runner) == "listening")
    await producer.queue(task="record", input={"n": 2})
    await recorder.wait_for(2, within=5)


def listener(jobs: asyncjobs.Jobs) -> str:
    """The listener's state as ``GET /health`` reports it to callers with credentials."""
    return str(health.details(jobs)["listener"])


async def test_a_job_due_later_wakes_the_runner_when_due(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = realtime(make_jobs, recorder.task, auto_run=auto())
    await jobs.start()
    due = utcnow() + timedelta(seconds=0.5)
    await jobs.queue(task="record", input={"n": 1}, wait_until=due)
    await recorder.wait_for(1, within=5)
    assert utcnow() >= due


async def test_a_retry_after_backoff_runs_when_due(make_jobs: MakeJobs) -> None:
    tries: list[float] = []
    done = anyio.Event()

    @asyncjobs.task(
        "flaky",
        retries=asyncjobs.Retries(attempts=2, backoff=asyncjobs.Backoff(delay=0.3)),
    )
    async def flaky() -> None:
        tries.append(anyio.current_time())
        if len(tries) < 3:
            raise RuntimeError("not yet")
        done.set()

    jobs = realtime(make_jobs, flaky, auto_run=auto())
    await jobs.start()
    await jobs.queue(task="flaky")
    with anyio.fail_after(6):
        await done.wait()
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(tries))


async def test_a_backlog_drains_without_waiting_for_ticks(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = realtime(make_jobs, recorder.task, auto_run=auto(limit=3))
    await jobs.queue_many([{"task": "record", "input": {"n": n}} for n in range(20)])
    await jobs.start()
    await jobs.queue(task="record", input={"n": 20})
    await recorder.wait_for(21, within=10)


async def test_without_wake_on_queue_a_tick_runs_at_most_limit(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = realtime(
        make_jobs, recorder.task, auto_run=auto(cron="* * * * * *", limit=2, wake_on_queue=False)
    )
    await jobs.queue_many([{"task": "record", "input": {"n": n}} for n in range(6)])
    await jobs.start()
    await until(lambda: len(recorder.ran) >= 2, within=5)
    assert len(recorder.ran) <= 4  # one or two ticks of two jobs, not the whole backlog


def test_notification_payload_parses() -> None:
    assert parse("default  asyncjobs-1") == ("default", None, "asyncjobs-1")
    queue, due, origin = parse("my queue 1767614400.5 asyncjobs-2")
    assert (queue, origin) == ("my queue", "asyncjobs-2")
    assert due is not None and due.timestamp() == 1767614400.5


def test_the_bus_publishes_each_runnable_queue_and_due_time_once() -> None:
    from asyncjobs.models import make_job
    from asyncjobs.wake import WakeBus

    now = utcnow()
    later = now + timedelta(hours=1)

    def job(id: int, queue: str, wait_until: Any = None, **values: Any) -> asyncjobs.Job:
        row = {"id": id, "queue": queue, "wait_until": wait_until, "created_at": now}
        return make_job({**row, "updated_at": now, **values}, now)

    bus, heard = WakeBus(), []
    unsubscribe = bus.subscribe(lambda queue, due: heard.append((queue, due)))
    bus.publish_jobs(
        [
            job(1, "a"),
            job(2, "a"),
            job(3, "b", later),
            job(4, "b", later),
            job(5, "c", completed_at=now),
            job(6, "d", has_error=True),
        ]
    )
    bus.publish("e", None)
    unsubscribe()
    bus.publish("f", None)
    assert heard == [("a", None), ("b", later), ("e", None)]
