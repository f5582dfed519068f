"""The claim, completion and insert statements run as direct driver calls on held connections.

Rows they write must read exactly as SQLAlchemy's column types read them, and the reverse; a
broken held connection fails one statement and is replaced.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from sqlalchemy import event, insert

import asyncjobs
from asyncjobs.storage import Claim, SqlStore, store_for
from asyncjobs.storage.postgres import MAX_HELD
from asyncjobs.storage.sqlite import MAX_STATEMENT_ROWS
from asyncjobs.storage.tables import jobs as jobs_table
from asyncjobs.storage.tables import row_values
from tests.conftest import FakeClock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]
NOW = datetime(2026, 1, 5, 12, 0, 0, 123456, tzinfo=UTC)


@asyncjobs.task("noop")
async def noop() -> None:
    return None


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    opened = store_for(database_url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def a_row(n: int, **changes: Any) -> dict[str, Any]:
    row = {
        "queue": "default",
        "task_slug": "noop",
        "workflow_slug": None,
        "input": {"n": n, "text": 'é ✓ "quoted"', "nested": {"list": [1, 2.5, None, True]}},
        "meta": {"source": "test"},
        "wait_until": datetime(2026, 1, 5, 13, 0, tzinfo=timezone(timedelta(hours=2))),
        "concurrency_key": None,
        "exclusive": False,
        "total_tried": 0,
        "has_error": False,
        "created_at": NOW + timedelta(microseconds=n),
        "updated_at": NOW,
    }
    row.update(changes)
    return row


def claim(token: str, *, limit: int = 10, keyed: bool = False) -> Claim:
    return Claim(
        now=NOW + timedelta(hours=1),
        until=NOW + timedelta(hours=2),
        token=token,
        limit=limit,
        order="created_at",
        queue="default",
        keyed=keyed,
    )


async def test_inserted_rows_read_the_same_through_sqlalchemy(store: SqlStore) -> None:
    (inserted,) = await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
    assert inserted == await store.get(inserted["id"])
    assert inserted["wait_until"] == datetime(2026, 1, 5, 11, 0, tzinfo=UTC)
    assert inserted["wait_until"].tzinfo is UTC
    assert inserted["input"]["text"] == 'é ✓ "quoted"'
    assert inserted["has_error"] is False and inserted["log"] is None


async def test_rows_written_through_sqlalchemy_claim_the_same(store: SqlStore) -> None:
    async with store.write() as conn:
        row = a_row(1, exclusive=True, concurrency_key="k")
        written = row_values(
            (await conn.execute(insert(jobs_table).returning(*jobs_table.c), row)).one()
        )
    (claimed,) = await store.claim(claim("t1", keyed=True))
    assert claimed == await store.get(written["id"])
    assert claimed["processing_token"] == "t1"
    assert claimed["processing_until"] == NOW + timedelta(hours=2)
    assert claimed["exclusive"] is True
    assert {k: v for k, v in claimed.items() if not k.startswith("processing")} == {
        **{k: v for k, v in written.items() if not k.startswith("processing")},
        "updated_at": NOW + timedelta(hours=1),
    }


async def test_completion_writes_only_the_logs_that_changed(store: SqlStore) -> None:
    rows = await store.insert_jobs([a_row(n) for n in range(3)], supersede=[], now=NOW)
    first, second, third = (row["id"] for row in rows)
    assert [r["id"] for r in await store.claim(claim("t1"))] == [first, second, third]
    entry = {"id": "e1", "task_slug": "noop", "task_id": "1", "output": {"ok": "✓"}}
    done = NOW + timedelta(hours=1)
    owned = await store.finish_owned(
        {first: [entry], second: None, 999: [entry]},
        "t1",
        live_after=done,
        now=done,
        delete=False,
    )
    assert owned == {first, second}
    logged, plain, untouched = [await store.get(i) for i in (first, second, third)]
    assert logged is not None and plain is not None and untouched is not None
    assert logged["log"] == [entry] and plain["log"] is None
    for row in (logged, plain):
        assert (row["completed_at"], row["updated_at"], row["total_tried"]) == (done, done, 1)
        assert row["processing_token"] is None and row["processing_until"] is None
    assert untouched["processing_token"] == "t1" and untouched["completed_at"] is None


async def test_completion_checks_token_and_lease(store: SqlStore) -> None:
    rows = await store.insert_jobs([a_row(1), a_row(2)], supersede=[], now=NOW)
    ids = [row["id"] for row in rows]
    await store.claim(claim("t1"))
    lease_end = NOW + timedelta(hours=2)
    for delete in (False, True):
        assert (
            await store.finish_owned(
                dict.fromkeys(ids), "other", live_after=NOW, now=NOW, delete=delete
            )
            == set()
        )
        assert (
            await store.finish_owned(
                dict.fromkeys(ids), "t1", live_after=lease_end, now=NOW, delete=delete
            )
            == set()
        )
    assert await store.finish_owned(
        dict.fromkeys(ids), "t1", live_after=NOW, now=NOW, delete=True
    ) == set(ids)
    assert [await store.get(i) for i in ids] == [None, None]


async def test_large_batches_keep_their_order(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[noop])
    for count in (MAX_STATEMENT_ROWS, MAX_STATEMENT_ROWS + 1):
        created = await jobs.queue_many([{"task": "noop", "input": {"n": n}} for n in range(count)])
        assert [job.input["n"] for job in created] == list(range(count))
        assert [job.id for job in created] == sorted(job.id for job in created)


async def test_a_held_connection_found_closed_is_replaced_before_use(
    store: SqlStore, backend: str, database_url: str
) -> None:
    await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
    await _break_held_connections(store, backend, database_url)
    (row,) = await store.insert_jobs([a_row(2)], supersede=[], now=NOW)
    assert [r["id"] for r in await store.claim(claim("t1"))] == [1, row["id"]]


async def _break_held_connections(store: SqlStore, backend: str, database_url: str) -> None:
    """Close the held connections under the store, as a restart does; return once the driver
    knows (PostgreSQL closes them as its terminated backends exit)."""
    held = [*store.held._idle[False], *store.held._idle[True]]
    assert held
    if backend == "sqlite":
        for connection in held:
            await connection.driver.close()
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    admin = await asyncpg.connect(
        host=url.host, port=url.port or 5432, user=url.username, database=url.database
    )
    try:
        pids = [await connection.driver.fetchval("SELECT pg_backend_pid()") for connection in held]
        for pid in pids:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()
    await _closed(connection.driver for connection in held)


async def _closed(drivers: Any) -> None:
    """Wait until each asyncpg connection knows the server closed it."""
    with anyio.fail_after(5):
        for driver in list(drivers):
            while not driver.is_closed():
                await anyio.sleep(0.01)  # the terminated backend is still exiting


async def test_closing_the_store_returns_held_connections(database_url: str) -> None:
    store = store_for(database_url)
    await store.open()
    await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
    pool = store.engine.sync_engine.pool
    assert pool.checkedout() >= 1  # type: ignore[attr-defined]
    await store.close()
    assert pool.checkedout() == 0  # type: ignore[attr-defined]


async def test_step_writes_convert_every_kind_of_value(store: SqlStore) -> None:
    (row,) = await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
    await store.claim(claim("t1"))
    later = datetime(2026, 1, 6, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    values = {
        "log": [{"id": "e1", "state": "failed"}],
        "error": {"name": "ValueError", "message": "bad ✗"},
        "has_error": True,
        "wait_until": later,
        "total_tried": 2,
        "processing_token": None,
        "updated_at": NOW,
    }
    live_after = NOW + timedelta(hours=1)
    assert not await store.update_owned(row["id"], "other", live_after=live_after, values=values)
    assert await store.update_owned(row["id"], "t1", live_after=live_after, values=values)
    stored = await store.get(row["id"])
    assert stored is not None
    assert {k: stored[k] for k in values} == {**values, "wait_until": later.astimezone(UTC)}
    with pytest.raises(ValueError, match="no_such_column"):
        await store.update_owned(row["id"], "t1", live_after=NOW, values={"no_such_column": 1})


@pytest.mark.postgres
async def test_claims_alone_commit_without_waiting_for_the_wal_flush(
    postgres_database: str,
) -> None:
    store = store_for(postgres_database)
    await store.open()
    try:
        await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
        await store.claim(claim("t1"))
        settings = {
            relaxed: [await h.driver.fetchval("SHOW synchronous_commit") for h in held]
            for relaxed, held in store.held._idle.items()
        }
        assert settings == {False: ["on"], True: ["off"]}
        await store.held.close()
        # The relaxed connection was closed (an invalidated pool entry reconnects on checkout),
        # so no pooled connection carries its setting into other statements.
        pooled = store.engine.sync_engine.pool.checkedin()  # type: ignore[attr-defined]
        assert pooled >= 2
        async with AsyncExitStack() as stack:
            for _ in range(pooled):  # every pooled connection at once
                conn = await stack.enter_async_context(store.engine.connect())
                setting = await conn.exec_driver_sql("SHOW synchronous_commit")
                assert setting.scalar() == "on"
    finally:
        await store.close()


async def test_concurrent_statements_share_a_bounded_set_of_connections(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[noop])
    async with anyio.create_task_group() as tg:
        for n in range(40):
            tg.start_soon(functools.partial(jobs.queue, task="noop", input={"n": n}))
    assert len(await jobs.find(limit=100)) == 40
    held = jobs.store.held._idle
    limit = 1 if jobs.store.dialect == "sqlite" else MAX_HELD[False]
    assert 1 <= len(held[False]) <= limit
    assert (await jobs.run(limit=40)).job_status == dict.fromkeys(range(1, 41), "success")
    assert len(held[True]) <= MAX_HELD[True]


async def test_runs_interrupted_at_any_point_lose_no_job_and_leak_no_connection(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    """Cancel ``run()`` after 0, 1, 2 ... loop turns, then after 0 to 3 ms: wherever the claim,
    the handler or the completion was, every job still completes once its lease has expired."""
    executed: list[int] = []

    async def count(*, input: dict[str, Any]) -> None:
        executed.append(input["n"])

    jobs = make_jobs(tasks=[asyncjobs.Task("count", count)])
    turns = 60
    await jobs.start(auto_run=False)
    opened: list[object] = []
    event.listen(jobs.store.engine.sync_engine, "connect", lambda *_: opened.append(1))
    for n in range(turns):
        await jobs.queue(task="count", input={"n": n})
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(functools.partial(jobs.run, limit=1))
                if n < turns // 2:
                    for _ in range(n):
                        await anyio.lowlevel.checkpoint()
                else:  # in the middle of a statement, in real time
                    await anyio.sleep((n - turns // 2) * 0.0001)
                scope.cancel()
    clock.advance(hours=1)  # every lease taken by an interrupted claim has expired
    await run_until_idle(jobs, limit=100)
    stored = await jobs.find(limit=100)
    assert sorted(job.input["n"] for job in stored if job.status == "completed") == list(
        range(turns)
    )
    assert set(executed) == set(range(turns))
    assert len(executed) - turns <= 1  # a handler cut off before its completion may run again
    # A statement is never cut off half-way, so no connection had to be replaced.
    assert len(opened) <= 3
    await jobs.stop()
    assert not jobs.store.is_open


@pytest.mark.parametrize("value", ["hello", "123", '"quoted"', "null", "true", "", "[1]"])
async def test_json_strings_read_back_as_strings(store: SqlStore, value: str) -> None:
    """A JSON value that is itself a string is not decoded a second time (asyncpg's jsonb
    codec already hands back Python values)."""
    (inserted,) = await store.insert_jobs([a_row(1, input=value)], supersede=[], now=NOW)
    assert inserted["input"] == value
    (claimed,) = await store.claim(claim("t1"))
    assert claimed["input"] == value
    assert claimed == await store.get(inserted["id"])


@pytest.mark.parametrize(
    "when",
    [
        datetime.min.replace(tzinfo=UTC),
        datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime.max.replace(tzinfo=UTC),
    ],
)
async def test_extreme_times_read_the_same_either_way(store: SqlStore, when: datetime) -> None:
    (inserted,) = await store.insert_jobs([a_row(1, wait_until=when)], supersede=[], now=NOW)
    assert inserted["wait_until"] == when
    assert inserted == await store.get(inserted["id"])


async def test_an_interrupted_statement_keeps_an_in_memory_database() -> None:
    """With ``:memory:`` the held connection is the database: a statement interrupted by a
    plain task cancellation (``asyncio.timeout``, say) must not close it."""
    import asyncio
    import threading

    store = store_for("sqlite+aiosqlite:///:memory:")
    await store.open()
    try:
        (first,) = await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
        (held,) = store.held._idle[False]
        busy = threading.Event()
        blocker = asyncio.ensure_future(held.driver._execute(busy.wait))  # holds the thread
        insert = asyncio.ensure_future(store.insert_jobs([a_row(2)], supersede=[], now=NOW))
        for _ in range(5):
            await asyncio.sleep(0)
        insert.cancel()
        busy.set()
        await blocker
        with pytest.raises(asyncio.CancelledError):
            await insert
        assert await store.get(first["id"]) == first
        assert len(await store.claim(claim("t1"))) == 2  # the interrupted insert still ran
    finally:
        await store.close()


@pytest.mark.postgres
async def test_after_a_server_restart_every_statement_works(
    postgres_database: str,
) -> None:
    """Connections the server closed (held or pooled) are replaced before use, so no statement
    fails once the driver has seen them closed."""
    import asyncpg
    from sqlalchemy.engine import make_url

    store = store_for(postgres_database)
    await store.open()
    try:
        pooled = []
        async with AsyncExitStack() as stack:  # a few pooled connections besides the held one
            for _ in range(4):
                conn = await stack.enter_async_context(store.engine.connect())
                await conn.exec_driver_sql("SELECT 1")
                pooled.append((await conn.get_raw_connection()).driver_connection)
        await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
        held = [connection.driver for connection in store.held._idle[False]]
        url = make_url(postgres_database)
        admin = await asyncpg.connect(
            host=url.host, port=url.port or 5432, user=url.username, database=url.database
        )
        try:  # what a restart does to every connection of this store
            ended = await admin.fetch(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = $1",
                store.name,
            )
            assert len(ended) == 4  # one of them now held
        finally:
            await admin.close()
        await _closed([*pooled, *held])
        for n in range(2, 10):
            await store.insert_jobs([a_row(n)], supersede=[], now=NOW)
        assert len(await store.get(1) or {}) > 0  # through SQLAlchemy's pool
        assert len(await store.claim(claim("t1"))) == 9
    finally:
        await store.close()


async def test_closing_the_store_mid_statement_closes_its_connection(database_url: str) -> None:
    """A statement still running when the store closes gives its connection no pool to go
    back to: it is closed, not left open until garbage collection."""
    store = store_for(database_url)
    await store.open()
    drivers: list[Any] = []
    event.listen(
        store.engine.sync_engine.pool,
        "checkout",
        lambda dbapi, *_: drivers.append(dbapi.driver_connection),
    )
    rows = [a_row(n) for n in range(200)]
    results: list[Any] = []

    async def insert() -> None:
        results.append(await store.insert_jobs(rows, supersede=[], now=NOW))

    async with anyio.create_task_group() as tg:
        tg.start_soon(insert)
        with anyio.fail_after(5):
            while not drivers:  # the statement has its connection
                await anyio.lowlevel.checkpoint()
        await store.close()
    assert len(results[0]) == len(rows)
    for driver in drivers:  # asyncpg's, or aiosqlite's
        assert driver.is_closed() if hasattr(driver, "is_closed") else driver._connection is None


async def test_a_refused_statement_keeps_its_connection(store: SqlStore) -> None:
    await store.insert_jobs([a_row(1)], supersede=[], now=NOW)
    (held,) = store.held._idle[False]
    pool = store.engine.sync_engine.pool
    opened = pool.checkedin() + pool.checkedout()  # type: ignore[attr-defined]
    with pytest.raises(asyncjobs.StorageError, match=r"(?i)null"):
        await store.insert_jobs([a_row(2, queue=None)], supersede=[], now=NOW)
    assert store.held._idle[False] == [held]  # kept: nothing was wrong with the connection
    (row,) = await store.insert_jobs([a_row(3)], supersede=[], now=NOW)
    assert row["queue"] == "default"
    assert pool.checkedin() + pool.checkedout() == opened  # type: ignore[attr-defined]
