"""A database made by an older asyncjobs is upgraded when opened."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import inspect, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

import asyncjobs
from asyncjobs.storage.migrations import ADDED_COLUMNS
from asyncjobs.storage.tables import SCHEMA_VERSION, schema_version
from asyncjobs.storage.tables import jobs as jobs_table
from tests.conftest import run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("noop")
async def noop(*, input: dict) -> None:
    return None


async def _drop_added_columns(conn: AsyncConnection, after: int = 1) -> None:
    """What version ``after`` created had none of the columns added since (their indexes and
    the triggers dropped first)."""
    on = " ON asyncjobs_jobs" if conn.dialect.name == "postgresql" else ""
    for trigger in ("child_finished", "child_dropped", "job_deleted"):
        await conn.execute(text(f"DROP TRIGGER IF EXISTS asyncjobs_{trigger}{on}"))
    indexes = (
        "ux_asyncjobs_jobs_idempotency_key",
        "ix_asyncjobs_jobs_claim",
        "ix_asyncjobs_jobs_parent",
    )
    for index in indexes:
        await conn.execute(text(f"DROP INDEX IF EXISTS {index}"))
    for version, columns in ADDED_COLUMNS.items():
        for column in columns if version > after else ():
            await conn.execute(text(f'ALTER TABLE asyncjobs_jobs DROP COLUMN "{column.name}"'))


async def test_a_version_1_schema_gets_the_newer_indexes(make_jobs: MakeJobs) -> None:
    old = make_jobs(tasks=[noop])
    await old.start(auto_run=False)
    names = sorted(str(index.name) for index in jobs_table.indexes)
    async with old.store.engine.begin() as conn:  # what 0.1 created had none of these
        for name in names:
            await conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        await _drop_added_columns(conn)
        await conn.execute(update(schema_version).values(version=1))
    await old.stop()

    jobs = make_jobs(tasks=[noop])
    await jobs.start(auto_run=False)
    async with jobs.store.engine.connect() as conn:
        found = await conn.run_sync(
            lambda sync: {index["name"] for index in inspect(sync).get_indexes("asyncjobs_jobs")}
        )
    assert set(names) <= found


async def test_a_version_1_schema_gets_the_newer_columns(make_jobs: MakeJobs) -> None:
    old = make_jobs(tasks=[noop])
    await old.queue(task="noop")
    async with old.store.engine.begin() as conn:  # what 0.1 created
        await _drop_added_columns(conn)
        await conn.execute(update(schema_version).values(version=1))
    await old.stop()

    jobs = make_jobs(tasks=[noop])
    await jobs.start(auto_run=False)
    async with jobs.store.engine.connect() as conn:
        assert (await conn.execute(select(schema_version.c.version))).scalar() == SCHEMA_VERSION
    await jobs.queue(task="noop")
    await run_until_idle(jobs)
    found = await jobs.find()
    assert [job.status for job in found] == ["completed", "completed"]
    assert [job.output for job in found] == [{}, {}]


async def test_a_version_3_database_reads_priority_0_and_gets_the_new_claim_index(
    make_jobs: MakeJobs,
) -> None:
    old = make_jobs(tasks=[noop])
    queued = await old.queue(task="noop")
    async with old.store.engine.begin() as conn:  # what 0.2 before priorities created
        await _drop_added_columns(conn, after=3)
        await conn.execute(
            text(
                "CREATE INDEX ix_asyncjobs_jobs_runnable ON asyncjobs_jobs (queue, created_at, id)"
                " WHERE completed_at IS NULL AND has_error = false"
            )
        )
        await conn.execute(update(schema_version).values(version=3))
    await old.stop()

    jobs = make_jobs(tasks=[noop])
    await jobs.start(auto_run=False)
    async with jobs.store.engine.connect() as conn:
        found = await conn.run_sync(
            lambda sync: {index["name"] for index in inspect(sync).get_indexes("asyncjobs_jobs")}
        )
    assert "ix_asyncjobs_jobs_claim" in found and "ix_asyncjobs_jobs_runnable" not in found
    job = await jobs.get(queued.id)
    assert job is not None and job.priority == 0
    assert [j.id for j in await jobs.find(where={"priority": 0})] == [queued.id]
    urgent = await jobs.queue(task="noop", priority=5)
    result = await jobs.run(limit=1)
    assert list(result.job_status) == [urgent.id]
