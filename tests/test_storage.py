"""The storage boundary: errors are translated, the schema is versioned, times stay aware."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy import update

import asyncjobs
from asyncjobs.storage import Store
from asyncjobs.storage.tables import schema_version

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("noop")
async def noop() -> None:
    return None


async def test_unreachable_database_is_a_storage_error() -> None:
    jobs = asyncjobs.Jobs(
        tasks=[noop], database_url="postgresql+asyncpg://postgres@127.0.0.1:1/none", auto_run=[]
    )
    with pytest.raises(asyncjobs.StorageError, match="open failed"):
        await jobs.start()
    with pytest.raises(asyncjobs.StorageError):
        await jobs.queue(task="noop")
    await jobs.stop()


async def test_sqlite_file_in_a_missing_folder_is_a_storage_error(tmp_path: object) -> None:
    jobs = asyncjobs.Jobs(database_url="sqlite+aiosqlite:////nonexistent/dir/jobs.db", auto_run=[])
    with pytest.raises(asyncjobs.StorageError):
        await jobs.start()


async def test_schema_is_created_once_and_versioned(database_url: str) -> None:
    first, second = Store(database_url), Store(database_url)
    await first.open()
    await second.open()  # an existing schema is accepted
    async with first.write() as conn:
        await conn.execute(update(schema_version).values(version=999))
    await second.close()
    third = Store(database_url)
    with pytest.raises(asyncjobs.StorageError, match="999"):
        await third.open()
    await first.close()


async def test_naive_datetimes_never_reach_the_database(database_url: str) -> None:
    store = Store(database_url)
    await store.open()
    try:
        with pytest.raises(asyncjobs.StorageError, match="naive"):
            await store.find({"status": "waiting"}, limit=1, order="id", now=datetime(2030, 1, 1))
    finally:
        await store.close()


async def test_store_repr_hides_password() -> None:
    assert "pw" not in repr(Store("postgresql+asyncpg://u:pw@h/db"))


async def test_closed_store_refuses_work() -> None:
    store = Store("sqlite+aiosqlite:///:memory:")
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine


async def test_in_memory_sqlite_works_for_a_whole_run() -> None:
    jobs = asyncjobs.Jobs(tasks=[noop], database_url="sqlite+aiosqlite:///:memory:", auto_run=[])
    async with jobs:
        job = await jobs.queue(task="noop")
        assert (await jobs.run()).job_status == {job.id: "success"}
