"""A job's output, stored with its completion, and ``wait()``; SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import pydantic
import pytest
from sqlalchemy import text

import asyncjobs
from asyncjobs.storage import common
from tests.conftest import run_until_idle

FAR = datetime(2100, 1, 1, tzinfo=UTC)

MakeJobs = Callable[..., asyncjobs.Jobs]


class Receipt(pydantic.BaseModel):
    total: int


@asyncjobs.task("double")
async def double(*, input: dict) -> dict:
    return {"n": input["n"] * 2}


@asyncjobs.task("boom", retries=0)
async def boom(*, input: dict) -> dict:
    raise RuntimeError("boom")


@asyncjobs.workflow("as-dict")
async def as_dict(*, tasks: Any, input: dict) -> dict:
    doubled = await tasks.double("a", input={"n": input["n"]})
    return {"doubled": doubled["n"]}


@asyncjobs.workflow("as-model")
async def as_model(*, input: dict) -> Receipt:
    return Receipt(total=input["n"])


@asyncjobs.workflow("as-none")
async def as_none() -> None:
    return None


@asyncjobs.workflow("as-object", retries=0)
async def as_object() -> Any:
    return object()


async def _done(jobs: asyncjobs.Jobs, **queued: Any) -> asyncjobs.Job:
    job = await jobs.queue(**queued)
    assert job.output is None
    await run_until_idle(jobs)
    found = await jobs.get(job.id)
    assert found is not None
    return found


async def test_a_workflows_return_value_is_its_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], workflows=[as_dict, as_model, as_none])
    assert (await _done(jobs, workflow="as-dict", input={"n": 2})).output == {"doubled": 4}
    assert (await _done(jobs, workflow="as-model", input={"n": 7})).output == {"total": 7}
    assert (await _done(jobs, workflow="as-none")).output == {}


async def test_a_single_tasks_output_is_the_jobs_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double])
    first = await jobs.queue(task="double", input={"n": 3})
    second = await jobs.queue(task="double", input={"n": 5})
    await run_until_idle(jobs)  # one batch: both completions in one statement
    outputs = [(await jobs.get(job.id)) for job in (first, second)]
    assert [job.output for job in outputs if job] == [{"n": 6}, {"n": 10}]


async def test_a_failed_job_has_no_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[boom], workflows=[as_object])
    failed = await _done(jobs, task="boom")
    assert (failed.status, failed.output) == ("failed", None)
    unstorable = await _done(jobs, workflow="as-object")
    assert (unstorable.status, unstorable.output) == ("failed", None)
    assert "output of workflow 'as-object'" in (unstorable.error or {})["message"]


# -- wait() -------------------------------------------------------------------------------


class Reads:
    """Counts the reads ``wait()`` makes through a store, and signals each one."""

    def __init__(self, jobs: asyncjobs.Jobs, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self.first = anyio.Event()
        read = jobs.store.get

        async def counted(job_id: int) -> Any:
            row = await read(job_id)
            self.count += 1
            self.first.set()
            return row

        monkeypatch.setattr(jobs.store, "get", counted)


@pytest.fixture(autouse=True)
def _no_slow_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without SQLite's look every second, only a wake can end a wait early."""
    monkeypatch.setattr(common, "FINISHED_POLL", 3600.0)


async def test_wait_returns_a_finished_job(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double, boom])
    done = await jobs.queue(task="double", input={"n": 1})
    failed = await jobs.queue(task="boom")
    cancelled = await jobs.queue(task="double", input={"n": 2}, wait_until=FAR)
    await run_until_idle(jobs)
    assert await jobs.cancel_by_id(cancelled.id)
    outcomes = [await jobs.wait(job.id, timeout=30) for job in (done, failed, cancelled)]
    assert [(j.status, j.output) for j in outcomes if j] == [
        ("completed", {"n": 2}),
        ("failed", None),
        ("cancelled", None),
    ]


async def test_wait_for_a_missing_job_is_none(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double], delete_job_on_complete=True)
    assert await jobs.wait(123456) is None
    deleted = await jobs.queue(task="double", input={"n": 1})
    await run_until_idle(jobs)
    assert await jobs.wait(deleted.id) is None


async def test_wait_times_out(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double])
    job = await jobs.queue(task="double", input={"n": 1})
    with pytest.raises(TimeoutError):
        await jobs.wait(job.id, timeout=0.05)


async def test_wait_refuses_a_bad_timeout(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()
    with pytest.raises(ValueError, match="timeout must be a number of seconds >= 0"):
        await jobs.wait(1, timeout=-1)
    with pytest.raises(TypeError, match="timeout must be a number of seconds or None"):
        await jobs.wait(1, timeout="1")  # type: ignore[arg-type]


async def _woken(waiter: asyncjobs.Jobs, job_id: int, reads: Reads, finish: Any) -> Any:
    """Start ``waiter.wait(job_id)``, ``finish()`` once it has looked, return what it got."""
    got: list[Any] = []

    async def wait() -> None:
        got.append(await waiter.wait(job_id, timeout=60))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await reads.first.wait()
        await finish()
    assert reads.count == 2  # the look before waiting, and the one after the wake
    return got[0]


async def test_a_run_in_this_process_wakes_a_waiter(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = make_jobs(tasks=[double], workflows=[as_model])
    job = await jobs.queue(workflow="as-model", input={"n": 3})
    done = await _woken(jobs, job.id, Reads(jobs, monkeypatch), lambda: run_until_idle(jobs))
    assert (done.status, done.output) == ("completed", {"total": 3})


async def test_a_cancel_in_this_process_wakes_a_waiter(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = make_jobs(tasks=[double])
    job = await jobs.queue(task="double", input={"n": 1})
    done = await _woken(jobs, job.id, Reads(jobs, monkeypatch), lambda: jobs.cancel_by_id(job.id))
    assert done.status == "cancelled"


async def test_a_finish_in_another_process_wakes_a_waiter_on_postgres(
    backend: str, make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no notifications: a waiter looks again every second")
    waiter, worker = make_jobs(), make_jobs(tasks=[double, boom])
    job = await worker.queue(task="double", input={"n": 4})
    done = await _woken(waiter, job.id, Reads(waiter, monkeypatch), lambda: run_until_idle(worker))
    assert (done.status, done.output) == ("completed", {"n": 8})
    failed = await worker.queue(task="boom")
    reads = Reads(waiter, monkeypatch)
    assert (
        await _woken(waiter, failed.id, reads, lambda: run_until_idle(worker))
    ).status == "failed"


async def test_a_waiter_on_sqlite_looks_again_for_other_processes_finishes(
    backend: str, make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("PostgreSQL notifies")
    monkeypatch.setattr(common, "FINISHED_POLL", 0.01)
    waiter, worker = make_jobs(), make_jobs(tasks=[double])
    job = await worker.queue(task="double", input={"n": 5})
    reads = Reads(waiter, monkeypatch)
    got: list[Any] = []

    async def wait() -> None:
        got.append(await waiter.wait(job.id, timeout=60))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait)
        await reads.first.wait()
        await run_until_idle(worker)
    assert got[0].output == {"n": 10}


async def test_a_deletion_or_cancel_in_another_process_wakes_a_waiter_on_postgres(
    backend: str, make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no notifications: a waiter looks again every second")
    waiter = make_jobs()
    worker = make_jobs(tasks=[double], delete_job_on_complete=True)
    job = await worker.queue(task="double", input={"n": 4})
    reads = Reads(waiter, monkeypatch)
    assert await _woken(waiter, job.id, reads, lambda: run_until_idle(worker)) is None
    job = await worker.queue(task="double", input={"n": 4})
    reads = Reads(waiter, monkeypatch)
    cancelled = await _woken(waiter, job.id, reads, lambda: worker.cancel_by_id(job.id))
    assert cancelled.status == "cancelled"
    async with waiter.store.engine.connect() as conn:  # every waiter unregistered
        assert (await conn.execute(text("SELECT count(*) FROM asyncjobs_waits"))).scalar() == 0


async def test_no_one_waiting_means_no_notification_on_postgres(
    backend: str, make_jobs: MakeJobs
) -> None:
    if backend != "postgres":
        pytest.skip("PostgreSQL only")
    jobs = make_jobs(tasks=[double, boom])
    await jobs.queue_many([{"task": "double", "input": {"n": n}} for n in range(3)])
    await jobs.queue(task="boom")
    heard: list[str] = []
    sentinel = anyio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        heard.append(payload)
        if payload == "sentinel":
            sentinel.set()

    async with jobs.store.engine.connect() as conn:
        raw = (await conn.get_raw_connection()).driver_connection
        assert raw is not None
        await raw.add_listener("asyncjobs_finished", on_notify)
        await run_until_idle(jobs)
        # Notifications arrive in commit order: whatever the run sent comes before this one.
        await raw.execute("SELECT pg_notify('asyncjobs_finished', 'sentinel')")
        with anyio.fail_after(10):
            await sentinel.wait()
        await raw.remove_listener("asyncjobs_finished", on_notify)
    assert heard == ["sentinel"]
