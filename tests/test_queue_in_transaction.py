"""queue(connection=...): jobs inserted in the app's own SQLAlchemy transaction (both backends)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from sqlalchemy import Column, Integer, MetaData, Table, func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

import asyncjobs
from asyncjobs.errors import ValidationError

MakeJobs = Callable[..., asyncjobs.Jobs]
app_metadata = MetaData()
orders = Table("app_orders", app_metadata, Column("id", Integer, primary_key=True))


async def confirm(*, input: dict[str, Any]) -> None:
    pass


CONFIRM = asyncjobs.Task("confirm-order", confirm)
ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
ON_POSTGRES = pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


@pytest.fixture
async def app_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """The app's own engine on asyncjobs' database, with a table of its own."""
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.run_sync(app_metadata.create_all)
    yield engine
    async with engine.begin() as conn:
        await conn.run_sync(app_metadata.drop_all)
    await engine.dispose()


@pytest.fixture
async def jobs(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    made = make_jobs(tasks=[CONFIRM])
    await made.start(auto_run=False)
    return made


def count_wakes(jobs: asyncjobs.Jobs) -> list[int]:
    """The ids of every job announced to the queue listeners (which wake autoRun)."""
    woken: list[int] = []
    publish = jobs.wake.publish_jobs

    def recording(created: Any) -> None:
        created = list(created)
        woken.extend(job.id for job in created)
        publish(created)

    jobs.wake.publish_jobs = recording  # type: ignore[method-assign]
    return woken


async def test_a_job_is_visible_only_after_the_commit(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine, backend: str
) -> None:
    woken = count_wakes(jobs)
    async with app_engine.connect() as conn:
        await conn.execute(orders.insert().values(id=7))
        job = await jobs.queue(task="confirm-order", input={"order": 7}, connection=conn)
        assert job.status == "queued" and job.input == {"order": 7}
        assert await jobs.get(job.id) is None and await jobs.find() == []
        if backend == "postgres":  # a SQLite runner waits for the app's write lock instead
            assert (await jobs.run()).job_status == {}
        assert woken == []
        await conn.commit()
        assert woken == [job.id]
    assert (await jobs.run()).job_status == {job.id: "success"}


async def test_a_rollback_leaves_no_job_and_wakes_nothing(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    woken = count_wakes(jobs)
    async with app_engine.connect() as conn:
        await conn.execute(orders.insert().values(id=7))
        await jobs.queue(task="confirm-order", input={"order": 7}, connection=conn)
        await conn.rollback()
        await conn.execute(orders.insert().values(id=8))  # a later transaction commits
        await conn.commit()
    assert await jobs.find() == [] and woken == []
    assert (await jobs.run()).job_status == {}


async def test_closing_without_a_commit_rolls_back_and_wakes_nothing(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    woken = count_wakes(jobs)
    async with app_engine.connect() as conn:
        await jobs.queue(task="confirm-order", connection=conn)
    assert await jobs.find() == [] and woken == []


async def test_a_session_commits_the_job_with_its_rows(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    woken = count_wakes(jobs)
    async with AsyncSession(app_engine) as session:
        await session.execute(orders.insert().values(id=1))
        job = await jobs.queue(task="confirm-order", input={"order": 1}, connection=session)
        assert await jobs.get(job.id) is None and woken == []
        await session.commit()
    assert woken == [job.id]
    assert [j.id for j in await jobs.find()] == [job.id]


async def test_a_session_rollback_leaves_no_job_and_wakes_nothing(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    woken = count_wakes(jobs)
    async with AsyncSession(app_engine) as session:
        await jobs.queue(task="confirm-order", connection=session)
        await session.rollback()
        await session.execute(orders.insert().values(id=2))
        await session.commit()
    assert await jobs.find() == [] and woken == []


async def test_a_job_in_a_rolled_back_savepoint_does_not_exist(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    async with AsyncSession(app_engine) as session:
        kept = await jobs.queue(task="confirm-order", input={"n": 1}, connection=session)
        savepoint = await session.begin_nested()
        await jobs.queue(task="confirm-order", input={"n": 2}, connection=session)
        await savepoint.rollback()
        await session.commit()
    assert [j.id for j in await jobs.find()] == [kept.id]


async def test_queue_many_inserts_every_item_in_the_callers_transaction(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    woken = count_wakes(jobs)
    async with app_engine.begin() as conn:
        created = await jobs.queue_many(
            [{"task": "confirm-order", "input": {"n": n}} for n in range(3)], connection=conn
        )
        assert woken == []
    assert woken == [job.id for job in created]
    assert sorted(j.input["n"] for j in await jobs.find()) == [0, 1, 2]


async def test_superseding_applies_inside_the_callers_transaction(
    make_jobs: MakeJobs, app_engine: AsyncEngine
) -> None:
    task = asyncjobs.Task(
        "sync-doc",
        confirm,
        concurrency=asyncjobs.Concurrency(lambda input: input["doc"], supersedes=True),
    )
    jobs = make_jobs(tasks=[task])
    first = await jobs.queue(task="sync-doc", input={"doc": "a", "v": 1})
    async with app_engine.begin() as conn:
        newest = await jobs.queue(task="sync-doc", input={"doc": "a", "v": 2}, connection=conn)
    assert [j.id for j in await jobs.find()] == [newest.id]
    assert newest.id != first.id


async def test_bad_input_stores_nothing_and_leaves_the_transaction_usable(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine
) -> None:
    async with app_engine.begin() as conn:
        with pytest.raises(ValidationError):
            await jobs.queue(task="confirm-order", input=[1], connection=conn)
        with pytest.raises(ValueError, match="exactly one of task= or workflow="):
            await jobs.queue(connection=conn)
        await conn.execute(orders.insert().values(id=3))
    async with app_engine.connect() as conn:
        assert (await conn.execute(select(func.count()).select_from(orders))).scalar() == 1
    assert await jobs.find() == []


async def test_a_connection_to_another_database_is_refused(
    jobs: asyncjobs.Jobs, tmp_path: Any, backend: str
) -> None:
    other = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'other.db'}")
    expected = "is a sqlite connection, but" if backend == "postgres" else "other.db"
    try:
        async with other.connect() as conn:
            with pytest.raises(ValueError, match=expected):
                await jobs.queue(task="confirm-order", connection=conn)
    finally:
        await other.dispose()
    assert await jobs.find() == []


@ON_SQLITE
async def test_an_in_memory_database_is_refused(jobs: asyncjobs.Jobs, backend: str) -> None:
    other = create_async_engine("sqlite+aiosqlite://")
    try:
        async with other.connect() as conn:
            with pytest.raises(ValueError, match="in-memory database cannot be shared"):
                await jobs.queue(task="confirm-order", connection=conn)
    finally:
        await other.dispose()


async def test_something_else_than_a_connection_is_a_type_error(jobs: asyncjobs.Jobs) -> None:
    with pytest.raises(TypeError, match="AsyncConnection or AsyncSession, got str"):
        await jobs.queue(task="confirm-order", connection="sqlite:///x.db")
    assert await jobs.find() == []


@ON_POSTGRES
async def test_a_database_without_the_tables_is_refused(
    jobs: asyncjobs.Jobs, database_url: str, backend: str
) -> None:
    setup = create_async_engine(database_url)
    async with setup.begin() as conn:
        await conn.execute(text("CREATE SCHEMA IF NOT EXISTS elsewhere"))
    await setup.dispose()
    hidden = create_async_engine(
        database_url, connect_args={"server_settings": {"search_path": "elsewhere"}}
    )
    try:
        async with hidden.connect() as conn:
            with pytest.raises(ValueError, match="has no asyncjobs tables"):
                await jobs.queue(task="confirm-order", connection=conn)
    finally:
        await hidden.dispose()
    assert await jobs.find() == []


@ON_POSTGRES
async def test_on_postgresql_the_commit_notifies_other_processes(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine, backend: str
) -> None:
    heard: list[str] = []
    got = anyio.Event()

    def wake(queue: str, due: Any) -> None:
        heard.append(queue)
        got.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.store.listen, wake)
        await anyio.wait_all_tasks_blocked()
        async with app_engine.connect() as conn:
            await jobs.queue(task="confirm-order", queue="mail", connection=conn)
            await conn.rollback()  # a rolled-back NOTIFY is never delivered
            await jobs.queue(task="confirm-order", queue="orders", connection=conn)
            await conn.commit()
        with anyio.fail_after(10):
            await got.wait()
        tg.cancel_scope.cancel()
    assert heard == ["orders"]


@ON_SQLITE
async def test_on_sqlite_a_runner_waits_for_the_apps_write_lock(
    jobs: asyncjobs.Jobs, app_engine: AsyncEngine, backend: str
) -> None:
    results: list[asyncjobs.RunResult] = []
    async with app_engine.connect() as conn:
        job = await jobs.queue(task="confirm-order", connection=conn)
        busy = (await conn.execute(text("PRAGMA busy_timeout"))).scalar()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: _append(results, jobs.run()))
            await anyio.wait_all_tasks_blocked()
            await conn.commit()
    assert busy == 30_000
    assert [r.job_status for r in results] == [{job.id: "success"}]


async def _append(results: list[Any], awaitable: Any) -> None:
    results.append(await awaitable)


async def test_a_session_bound_to_nothing_is_refused(jobs: asyncjobs.Jobs) -> None:
    async with AsyncSession() as session:
        with pytest.raises(ValueError, match="AsyncSession bound to no engine"):
            await jobs.queue(task="confirm-order", connection=session)
