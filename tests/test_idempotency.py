"""Idempotency keys: one unfinished job per key, atomically, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import asyncjobs
from asyncjobs.errors import ValidationError
from asyncjobs.queueing import prepare_rows
from asyncjobs.storage import inserts
from asyncjobs.storage.sqlite import MAX_STATEMENT_ROWS
from tests.conftest import run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


async def _noop() -> None:
    return None


async def _boom() -> None:
    raise RuntimeError("boom")


def _key(*, input: dict[str, Any]) -> str | None:
    return input.get("key")


NOOP = asyncjobs.Task("noop", _noop)
OTHER = asyncjobs.Task("other", _noop)
BOOM = asyncjobs.Task("boom", _boom, retries=0)
LATEST = asyncjobs.Task("latest", _noop, concurrency=asyncjobs.Concurrency(_key, supersedes=True))


def _jobs(make_jobs: MakeJobs, **options: Any) -> asyncjobs.Jobs:
    return make_jobs(tasks=[NOOP, OTHER, BOOM, LATEST], **options)


async def test_a_held_key_returns_its_job_and_stores_nothing(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="noop", input={"n": 1}, idempotency_key="order-7")
    again = await jobs.queue(task="noop", input={"n": 2}, idempotency_key="order-7")
    assert again == first
    assert (first.idempotency_key, first.input) == ("order-7", {"n": 1})
    assert [job.id for job in await jobs.find()] == [first.id]


async def test_the_key_is_global_across_slugs_and_queues(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="noop", queue="a", idempotency_key="k")
    assert (await jobs.queue(task="other", queue="b", idempotency_key="k")).id == first.id
    other = await jobs.queue(task="noop", queue="a", idempotency_key="k2")
    assert other.id != first.id
    assert len(await jobs.find()) == 2


async def test_find_filters_on_the_key(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    job = await jobs.queue(task="noop", idempotency_key="k")
    await jobs.queue(task="noop")
    assert [found.id for found in await jobs.find(where={"idempotency_key": "k"})] == [job.id]


@pytest.mark.parametrize("delete", [True, False], ids=["deleted", "kept"])
async def test_a_completed_job_frees_its_key(make_jobs: MakeJobs, delete: bool) -> None:
    jobs = _jobs(make_jobs, delete_job_on_complete=delete)
    first = await jobs.queue(task="noop", idempotency_key="k")
    await run_until_idle(jobs)
    second = await jobs.queue(task="noop", idempotency_key="k")
    assert second.status == "queued" and second.created_at == first.created_at
    assert [job.status for job in await jobs.find()] == ["queued"] + ["completed"] * (not delete)


async def test_a_job_failed_for_good_frees_its_key(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="boom", idempotency_key="k")
    await run_until_idle(jobs)
    assert (await jobs.get(first.id)).status == "failed"  # type: ignore[union-attr]
    assert (await jobs.queue(task="boom", idempotency_key="k")).id != first.id


async def test_a_cancelled_job_frees_its_key(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="noop", idempotency_key="k")
    assert await jobs.cancel(where={"id": first.id}) == 1
    assert (await jobs.queue(task="noop", idempotency_key="k")).id != first.id


async def test_a_retried_job_keeps_its_key_unless_another_took_it(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="boom", idempotency_key="k")
    await run_until_idle(jobs)
    assert await jobs.retry_by_id(first.id)
    assert (await jobs.queue(task="boom", idempotency_key="k")).id == first.id
    await run_until_idle(jobs)
    taker = await jobs.queue(task="noop", idempotency_key="k")
    assert await jobs.retry_by_id(first.id)
    again = await jobs.get(first.id)
    assert again is not None and (again.status, again.idempotency_key) == ("queued", None)
    assert (await jobs.queue(task="noop", idempotency_key="k")).id == taker.id


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("", "non-empty str"),
        (7, "non-empty str"),
        ("x" * 256, "256 characters long; the limit is 255"),
        ("a\x00b", "NUL"),
    ],
)
async def test_a_bad_key_is_refused_and_nothing_is_stored(
    make_jobs: MakeJobs, key: Any, problem: str
) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(ValidationError, match=problem):
        await jobs.queue(task="noop", idempotency_key=key)
    with pytest.raises(ValidationError, match=f"item 1: .*{problem}"):
        await jobs.queue_many([{"task": "noop"}, {"task": "noop", "idempotency_key": key}])
    assert await jobs.find() == []


async def test_a_key_of_255_characters_is_stored(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    key = "é" * 255
    assert (await jobs.queue(task="noop", idempotency_key=key)).idempotency_key == key


@pytest.mark.parametrize("size", [4, MAX_STATEMENT_ROWS + 2])
async def test_queue_many_gives_each_taken_key_its_holder(make_jobs: MakeJobs, size: int) -> None:
    jobs = _jobs(make_jobs)
    held = await jobs.queue(task="noop", idempotency_key="held")
    items = [
        {"task": "noop", "input": {"n": 0}, "idempotency_key": "new"},
        {"task": "noop", "input": {"n": 1}, "idempotency_key": "held"},
        {"task": "other", "input": {"n": 2}, "idempotency_key": "new"},
    ] + [{"task": "noop", "input": {"n": n}} for n in range(3, size)]
    created = await jobs.queue_many(items)
    assert [job.input["n"] for job in created[3:]] == list(range(3, size))
    assert created[1] == held
    assert created[2] == created[0] and created[0].input == {"n": 0}
    assert len(await jobs.find(limit=size + 1)) == size - 1


async def test_a_held_key_supersedes_nothing(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    pending = await jobs.queue(task="latest", input={"key": "c"}, idempotency_key="k")
    answered = await jobs.queue(task="latest", input={"key": "c"}, idempotency_key="k")
    assert answered.id == pending.id
    newer = await jobs.queue(task="latest", input={"key": "c"}, idempotency_key="k2")
    assert [job.id for job in await jobs.find()] == [newer.id]  # the key holder superseded
    assert (await jobs.queue(task="noop", idempotency_key="k")).id != pending.id


async def test_concurrent_calls_with_one_key_store_one_job(make_jobs: MakeJobs) -> None:
    apps = [_jobs(make_jobs), _jobs(make_jobs)]
    for app in apps:
        await app.start(auto_run=False)
    ids: list[int] = []

    async def queue(app: asyncjobs.Jobs, n: int) -> None:
        job = await app.queue(task="noop", input={"n": n}, idempotency_key="once")
        ids.append(job.id)

    async with anyio.create_task_group() as group:
        for n in range(20):
            group.start_soon(queue, apps[n % 2], n)
    assert len(set(ids)) == 1 and len(ids) == 20
    assert [job.id for job in await apps[0].find()] == [ids[0]]


@pytest.fixture
async def app_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url)
    yield engine
    await engine.dispose()


async def test_a_rolled_back_transaction_leaves_the_key_free(
    make_jobs: MakeJobs, app_engine: AsyncEngine
) -> None:
    jobs = _jobs(make_jobs)
    await jobs.start(auto_run=False)
    async with app_engine.connect() as conn, conn.begin() as transaction:
        first = await jobs.queue(task="noop", idempotency_key="k", connection=conn)
        again = await jobs.queue(task="other", idempotency_key="k", connection=conn)
        assert again.id == first.id
        await transaction.rollback()
    assert await jobs.find() == []
    stored = await jobs.queue(task="noop", idempotency_key="k")
    async with app_engine.begin() as conn:
        answered = await jobs.queue(task="noop", idempotency_key="k", connection=conn)
    assert answered.id == stored.id
    assert len(await jobs.find()) == 1


async def _racing(make_jobs: MakeJobs, every_round: bool) -> tuple[asyncjobs.Jobs, Any]:
    """A store whose inserts race a holder of key ``k`` that is cancelled right after each
    skipped insert (before its holder is read): the first time, or ``every_round``."""
    jobs = _jobs(make_jobs)
    await jobs.start(auto_run=False)
    store: Any = jobs.store
    rounds: list[str] = []

    async def fetch(sql: str, args: Any) -> Any:
        racing = sql.startswith("INSERT") and (every_round or not rounds)
        if racing:
            rounds.append(sql)
            holder = await jobs.queue(task="other", idempotency_key="k")
        found = await store.held.fetch(sql, args)
        if racing:
            await jobs.cancel(where={"id": holder.id})
        return found

    return jobs, fetch


async def _insert_racing(jobs: asyncjobs.Jobs, fetch: Any) -> list[dict[str, Any]]:
    now = jobs.clock()
    rows, _ = await prepare_rows(jobs.registry, [{"task": "noop", "idempotency_key": "k"}], now)
    return await inserts.insert(fetch, jobs.store.inserts, rows, [], now)  # type: ignore[attr-defined]


async def test_a_holder_finishing_meanwhile_frees_the_key(make_jobs: MakeJobs) -> None:
    jobs, fetch = await _racing(make_jobs, every_round=False)
    (row,) = await _insert_racing(jobs, fetch)
    assert (row["task_slug"], row["idempotency_key"]) == ("noop", "k")
    assert [job.task_slug for job in await jobs.find(where={"status": "queued"})] == ["noop"]


async def test_a_key_that_keeps_changing_hands_is_a_storage_error(make_jobs: MakeJobs) -> None:
    jobs, fetch = await _racing(make_jobs, every_round=True)
    with pytest.raises(asyncjobs.StorageError, match="changed hands 100 times"):
        await _insert_racing(jobs, fetch)


@pytest.mark.parametrize(
    "backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_a_connection_of_another_driver_is_refused(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    engine = create_async_engine(jobs.database_url.replace("+asyncpg", "+psycopg"))
    try:
        async with engine.connect() as conn:
            with pytest.raises(ValueError, match="uses the psycopg driver"):
                await jobs.queue(task="noop", connection=conn)
    finally:
        await engine.dispose()
