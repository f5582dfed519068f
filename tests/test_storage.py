"""The storage boundary: errors are translated, the schema is versioned, times stay aware."""

from __future__ import annotations

import sqlite3
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import update

import asyncjobs
from asyncjobs.storage import store_for
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
    first, second = store_for(database_url), store_for(database_url)
    await first.open()
    await second.open()  # an existing schema is accepted
    async with first.write() as conn:
        await conn.execute(update(schema_version).values(version=999))
    await second.close()
    third = store_for(database_url)
    with pytest.raises(asyncjobs.StorageError, match="999"):
        await third.open()
    await first.close()


async def test_instances_opening_a_new_sqlite_file_at_once_all_open(tmp_path: Path) -> None:
    """Several instances starting together on a file that does not exist yet (a deploy's
    first start): each switches it to WAL, and SQLite refuses a second switch at once, without
    waiting for the first, which used to fail about one start in eight."""
    for round_ in range(25):
        url = f"sqlite+aiosqlite:///{tmp_path / f'new{round_}.db'}"
        stores = [store_for(url) for _ in range(4)]
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(store.open)
        for store in stores:
            await store.close()
        assert _journal_mode(url) == "wal"


def _journal_mode(url: str) -> str:
    with sqlite3.connect(url.split("///", 1)[1]) as conn:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])


async def test_naive_datetimes_never_reach_the_database(database_url: str) -> None:
    store = store_for(database_url)
    await store.open()
    try:
        with pytest.raises(asyncjobs.StorageError, match="naive"):
            await store.find({"status": "waiting"}, limit=1, order="id", now=datetime(2030, 1, 1))
    finally:
        await store.close()


async def test_store_repr_hides_password() -> None:
    assert "pw" not in repr(store_for("postgresql+asyncpg://u:pw@h/db"))


async def test_closed_store_refuses_work() -> None:
    store = store_for("sqlite+aiosqlite:///:memory:")
    with pytest.raises(RuntimeError, match="not open"):
        _ = store.engine


async def test_in_memory_sqlite_works_for_a_whole_run() -> None:
    jobs = asyncjobs.Jobs(tasks=[noop], database_url="sqlite+aiosqlite:///:memory:", auto_run=[])
    async with jobs:
        job = await jobs.queue(task="noop")
        assert (await jobs.run()).job_status == {job.id: "success"}


SECRET_VALUE = "card-4111-1111"


def _row(**changes: Any) -> dict[str, Any]:
    row = {
        "queue": "default",
        "task_slug": "noop",
        "input": {"card": SECRET_VALUE},
        "meta": {},
        "total_tried": 0,
        "has_error": False,
        "created_at": datetime(2026, 1, 5, tzinfo=UTC),
        "updated_at": datetime(2026, 1, 5, tzinfo=UTC),
    }
    return {**row, **changes}


def _told(error: BaseException) -> str:
    """Everything a log record of ``error`` would show: its message and its causes."""
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize("supersede", [[], ["key"]], ids=["single", "transaction"])
async def test_a_storage_error_names_the_statement_kind_but_no_bound_value(
    database_url: str, supersede: list[str]
) -> None:
    store = store_for(database_url)
    await store.open()
    try:
        with pytest.raises(asyncjobs.StorageError, match=r"(?i)null") as caught:
            await store.insert_jobs([_row(queue=None)], supersede=supersede, now=datetime.now(UTC))
    finally:
        await store.close()
    message = str(caught.value)
    assert message.startswith("statement failed: ")
    assert SECRET_VALUE not in _told(caught.value)
    assert "\n" not in message


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
async def test_a_value_the_driver_quotes_stays_out_of_the_storage_error(database_url: str) -> None:
    store = store_for(database_url)
    await store.open()
    try:
        with pytest.raises(asyncjobs.StorageError, match=r"^get failed \(SELECT\): ") as caught:
            await store.get(SECRET_VALUE)  # type: ignore[arg-type]
    finally:
        await store.close()
    assert SECRET_VALUE not in str(caught.value)
