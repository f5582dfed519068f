"""A lost database connection never fails a job, never costs it a try, never re-runs a step.

The server dropping its connections (a restart, ``pg_terminate_backend``, a failover) is done
here with ``pg_terminate_backend`` from a separate connection; on SQLite, by closing the
driver connections the store holds. A statement on a connection already known closed goes to
a fresh one instead; a fenced job write whose connection broke mid-way is sent once more; a
database that stays away leaves the job to its lease, with no try counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from sqlalchemy import event

import asyncjobs
from asyncjobs.storage import SqlStore
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
LEASE = asyncjobs.Lease(duration=60, safety_buffer=5)
ROW_LOCK = "SELECT 1 FROM asyncjobs_jobs WHERE id = $1 FOR UPDATE"


@asynccontextmanager
async def admin(database_url: str, *, own_database: bool = False) -> AsyncIterator[Any]:
    """An asyncpg connection of its own, to the server's ``postgres`` database (or the test's)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        database=url.database if own_database else "postgres",
    )
    try:
        yield conn
    finally:
        await conn.close()


def held_drivers(store: SqlStore) -> list[Any]:
    return [held.driver for held in [*store.held._idle[False], *store.held._idle[True]]]


async def watched(jobs: asyncjobs.Jobs) -> asyncjobs.Jobs:
    """Open ``jobs`` and note every pooled connection it uses (see ``drop_connections``)."""
    await jobs.start(auto_run=False)
    drivers: list[Any] = []
    event.listen(
        jobs.store.engine.sync_engine.pool,
        "checkout",
        lambda dbapi, *_: drivers.append(dbapi.driver_connection),
    )
    jobs.pooled_drivers = drivers  # type: ignore[attr-defined]
    return jobs


async def drop_connections(
    jobs: asyncjobs.Jobs, backend: str, database_url: str, *, wait: bool
) -> None:
    """What a server restart does to every connection of ``store``.

    ``wait``: return once the driver knows its connections are closed (held ones, and pooled
    ones noted by ``watched``); otherwise at once, so that the next statement may still be
    sent on a connection the server is closing.
    """
    store = jobs.store
    drivers = held_drivers(store)
    assert drivers
    if backend == "sqlite":
        for driver in drivers:
            await driver.close()
        return
    async with admin(database_url) as conn:
        ended = await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            store.name,
        )
    assert ended
    drivers += getattr(jobs, "pooled_drivers", [])
    with anyio.fail_after(5):
        while wait and not all(driver.is_closed() for driver in drivers):
            await anyio.sleep(0.01)  # the server closes them as its backends exit


@asynccontextmanager
async def refusing_connections(database_url: str) -> AsyncIterator[Callable[[], Any]]:
    """Yield a callable that makes the test database refuse new connections and drops the
    current ones; connections are allowed again on exit."""
    from sqlalchemy.engine import make_url

    name = make_url(database_url).database
    async with admin(database_url) as conn:

        async def refuse() -> None:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await conn.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                name,
            )

        try:
            yield refuse
        finally:
            await conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


async def test_the_first_queue_after_the_server_dropped_its_connections_succeeds(
    make_jobs: MakeJobs, backend: str, database_url: str
) -> None:
    @asyncjobs.task("noop")
    async def noop() -> None:
        return None

    jobs = await watched(make_jobs(tasks=[noop]))
    first = await jobs.queue(task="noop")
    assert [job.id for job in await jobs.find()] == [first.id]  # a pooled connection too
    await drop_connections(jobs, backend, database_url, wait=True)
    assert [job.id for job in await jobs.find()] == [first.id]  # the pool's statement first
    await drop_connections(jobs, backend, database_url, wait=True)
    second = await jobs.queue(task="noop")
    assert {job.id for job in await jobs.find()} == {first.id, second.id}
    assert (await jobs.run()).job_status == {first.id: "success", second.id: "success"}


@asynccontextmanager
async def cutting(database_url: str, store: SqlStore) -> AsyncIterator[Callable[..., Any]]:
    """Yield ``cut(lock_sql, *args)``: the next statement that needs that lock is cut off.

    A connection of the test's takes the lock, so the statement waits in the server; once it
    waits, its backend is terminated, and the lock is released.
    """
    async with (
        admin(database_url, own_database=True) as locker,
        admin(database_url) as killer,
        anyio.create_task_group() as tg,
    ):

        async def terminate_the_waiting_write(transaction: Any) -> None:
            with anyio.fail_after(10):
                while not await killer.fetch(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE application_name = $1 AND wait_event_type = 'Lock'",
                    store.name,
                ):
                    await anyio.sleep(0.01)  # the write has not reached the lock yet
            await transaction.rollback()

        async def cut(lock_sql: str, *args: Any) -> None:
            transaction = locker.transaction()
            await transaction.start()
            await locker.execute(lock_sql, *args)
            tg.start_soon(terminate_the_waiting_write, transaction)

        yield cut


async def test_every_held_connection_the_server_closed_is_replaced(
    make_jobs: MakeJobs, backend: str, database_url: str
) -> None:
    @asyncjobs.task("noop")
    async def noop() -> None:
        return None

    jobs = make_jobs(tasks=[noop])
    async with anyio.create_task_group() as tg:  # at once: each holds a connection of its own
        for _ in range(4):
            tg.start_soon(lambda: jobs.queue(task="noop"))
    await drop_connections(jobs, backend, database_url, wait=True)
    for _ in range(4):
        await jobs.queue(task="noop")
    assert len(await jobs.find()) == 8


class Steps:
    """A three-step workflow whose second step breaks the write that follows it, once."""

    def __init__(self, drop: Callable[[int], Any]) -> None:
        self.drop = drop
        self.ran: Counter[int] = Counter()
        self.dropped = anyio.Event()

    async def step(self, *, input: dict, job: asyncjobs.Job) -> dict:
        self.ran[input["n"]] += 1
        if input["n"] == 2 and self.ran[2] == 1:
            await self.drop(job.id)
            self.dropped.set()
        return {"n": input["n"]}

    async def flow(self, *, tasks: Any) -> None:
        for n in (1, 2, 3):
            await tasks.step(str(n), input={"n": n})

    def definitions(self) -> dict[str, Any]:
        return {
            "tasks": [asyncjobs.Task("step", self.step)],
            "workflows": [asyncjobs.Workflow("flow", self.flow)],
        }


async def run_steps(jobs: asyncjobs.Jobs, steps: Steps) -> None:
    job = await jobs.queue(workflow="flow")
    assert (await jobs.run()).job_status == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("completed", 1)
    assert steps.ran == {1: 1, 2: 1, 3: 1}
    assert [entry.task_id for entry in done.log] == ["1", "2", "3"]


async def test_a_step_write_after_the_server_closed_the_connection_succeeds(
    make_jobs: MakeJobs, backend: str, database_url: str
) -> None:
    async def drop(job_id: int) -> None:
        await drop_connections(jobs, backend, database_url, wait=True)

    steps = Steps(drop)
    jobs = make_jobs(**steps.definitions(), lease=LEASE)
    await run_steps(jobs, steps)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_step_write_cut_off_mid_statement_is_sent_once_more(
    make_jobs: MakeJobs, database_url: str
) -> None:
    steps = Steps(lambda job_id: cut(ROW_LOCK, job_id))
    jobs = make_jobs(**steps.definitions(), lease=LEASE)
    await jobs.start(auto_run=False)
    async with cutting(database_url, jobs.store) as cut:
        await run_steps(jobs, steps)


async def test_a_completion_after_the_server_closed_the_connection_succeeds(
    make_jobs: MakeJobs, backend: str, database_url: str
) -> None:
    @asyncjobs.task("dropper")
    async def dropper() -> None:
        await drop_connections(jobs, backend, database_url, wait=True)

    jobs = make_jobs(tasks=[dropper])
    job = await jobs.queue(task="dropper")
    assert (await jobs.run()).job_status == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("completed", 1)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_completion_cut_off_mid_statement_is_sent_once_more(
    make_jobs: MakeJobs, database_url: str
) -> None:
    @asyncjobs.task("cut-me")
    async def cut_me(*, job: asyncjobs.Job) -> None:
        await cut(ROW_LOCK, job.id)

    jobs = make_jobs(tasks=[cut_me])
    job = await jobs.queue(task="cut-me")
    async with cutting(database_url, jobs.store) as cut:
        assert (await jobs.run()).job_status == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("completed", 1)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_an_insert_cut_off_mid_statement_is_not_sent_again(
    make_jobs: MakeJobs, database_url: str
) -> None:
    """Its commit may have been lost rather than never made: sent again, it could store the
    job twice, so the caller gets the error and decides."""

    @asyncjobs.task("noop")
    async def noop() -> None:
        return None

    jobs = make_jobs(tasks=[noop])
    await jobs.start(auto_run=False)
    async with cutting(database_url, jobs.store) as cut:
        await cut("LOCK TABLE asyncjobs_jobs IN SHARE MODE")
        with pytest.raises(asyncjobs.StorageError, match="terminating connection"):
            await jobs.queue(task="noop")
    assert await jobs.find() == []
    queued = await jobs.queue(task="noop")
    assert [job.id for job in await jobs.find()] == [queued.id]


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
async def test_a_database_that_stays_away_leaves_the_jobs_to_their_lease(
    make_jobs: MakeJobs, database_url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    async with refusing_connections(database_url) as refuse:
        steps = Steps(lambda job_id: refuse())

        @asyncjobs.task("single")
        async def single() -> dict:
            await steps.dropped.wait()
            return {"done": True}

        jobs = make_jobs(
            tasks=[*steps.definitions()["tasks"], single],
            workflows=steps.definitions()["workflows"],
            lease=LEASE,
        )
        flow = await jobs.queue(workflow="flow")
        task = await jobs.queue(task="single")
        with anyio.fail_after(20):
            assert (await jobs.run()).job_status == {}  # neither outcome could be written
    assert f"Could not record job {flow.id}" in caplog.text
    assert f"Could not record job {task.id}" in caplog.text
    for job_id in (flow.id, task.id):  # leased still: the hand-back could not be written
        left = await jobs.get(job_id)
        assert left is not None
        assert (left.status, left.total_tried, left.has_error) == ("processing", 0, False)
    clock.advance(61)  # the lease has expired
    assert (await jobs.run()).job_status == {flow.id: "success", task.id: "success"}
    assert steps.ran == {1: 1, 2: 2, 3: 1}  # only the step whose success was lost runs again
    for job_id in (flow.id, task.id):
        done = await jobs.get(job_id)
        assert done is not None
        assert (done.status, done.total_tried) == ("completed", 1)
