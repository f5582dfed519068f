"""Retention: finished jobs older than their kind's duration are deleted in batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncjobs
from asyncjobs import retention
from tests.conftest import T0, FakeClock, run_until_idle
from tests.test_cli import make_cli

MakeJobs = Callable[..., asyncjobs.Jobs]
KEEP = asyncjobs.Retention(completed=60, failed=timedelta(minutes=2), cancelled=180)


async def ok() -> None:
    return None


async def broken() -> None:
    raise RuntimeError("broken")


TASKS = [asyncjobs.Task("ok", ok), asyncjobs.Task("broken", broken)]


async def _finished(jobs: asyncjobs.Jobs) -> dict[str, int]:
    """One completed, one failed and one cancelled job; their ids by status."""
    completed = await jobs.queue(task="ok")
    failed = await jobs.queue(task="broken")
    await run_until_idle(jobs)
    cancelled = await jobs.queue(task="ok", queue="held")
    await jobs.cancel(queue="held")
    return {"completed": completed.id, "failed": failed.id, "cancelled": cancelled.id}


async def _statuses(jobs: asyncjobs.Jobs) -> list[str]:
    return sorted(job.status for job in await jobs.find())


@pytest.mark.parametrize(
    "bad", [-1, float("inf"), float("nan"), True, "60", timedelta(seconds=-1), [60]]
)
def test_retention_refuses_a_duration_it_cannot_use(bad: Any) -> None:
    with pytest.raises(ValueError, match="Retention failed must be"):
        asyncjobs.Retention(failed=bad)


def test_retention_takes_seconds_timedeltas_and_none() -> None:
    kept = asyncjobs.Retention(completed=0, failed=1.5, cancelled=timedelta(days=1))
    assert (kept.completed, kept.failed, kept.cancelled) == (0, 1.5, timedelta(days=1))
    assert asyncjobs.Retention().cutoffs(T0) == []
    with pytest.raises(TypeError, match="retention"):
        asyncjobs.Jobs(retention={"completed": 60})  # type: ignore[arg-type]


async def test_prune_deletes_each_kind_past_its_own_duration(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=TASKS, retention=KEEP)
    await _finished(jobs)
    clock.advance(59)
    assert await jobs.prune() == 0
    clock.advance(2)
    assert await jobs.prune() == 1  # completed 61 s ago, past its 60 s
    assert await _statuses(jobs) == ["cancelled", "failed"]
    clock.advance(60)
    assert await jobs.prune() == 1
    clock.advance(60)
    assert await jobs.prune() == 1
    assert await jobs.find() == []


async def test_prune_never_deletes_an_unfinished_job(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=TASKS, retention=asyncjobs.Retention(completed=0, failed=0, cancelled=0))
    await jobs.queue(task="ok", queue="later", wait_until=clock.now + timedelta(days=1))
    await jobs.queue(task="ok", queue="later")
    await jobs.queue(task="broken", queue="later", wait_until=clock.now - timedelta(days=9))
    await _finished(jobs)
    clock.advance(days=30)
    assert await jobs.prune() == 3
    assert await _statuses(jobs) == ["queued", "queued", "queued"]


async def test_none_keeps_that_kind_for_good(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=TASKS, retention=asyncjobs.Retention(failed=1))
    ids = await _finished(jobs)
    clock.advance(days=365)
    assert await jobs.prune() == 1
    assert await jobs.get(ids["failed"]) is None
    assert await _statuses(jobs) == ["cancelled", "completed"]


async def test_without_retention_prune_deletes_nothing(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=TASKS)
    await _finished(jobs)
    clock.advance(days=365)
    assert (await jobs.prune(), await jobs.prune_if_due()) == (0, 0)
    assert len(await jobs.find()) == 3


async def test_a_retried_job_is_no_longer_pruned_as_failed(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=TASKS, retention=asyncjobs.Retention(failed=60))
    ids = await _finished(jobs)
    clock.advance(120)
    assert await jobs.retry_by_id(ids["failed"])
    assert await jobs.prune() == 0


async def test_prune_works_in_batches_of_at_most_1000_rows(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=TASKS, retention=asyncjobs.Retention(cancelled=0))
    await jobs.queue_many([{"task": "ok"} for _ in range(2_500)])
    assert await jobs.cancel(queue="default") == 2_500
    clock.advance(1)
    assert await jobs.store.prune("cancelled", before=clock.now, limit=retention.BATCH) == 1_000
    assert await jobs.prune() == 1_500
    assert await jobs.find() == []


async def test_a_store_refuses_an_unknown_kind(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=TASKS)
    await jobs.start(auto_run=False)
    with pytest.raises(ValueError, match="unknown kind"):
        await jobs.store.prune("queued", before=clock.now, limit=1)


async def test_ticks_prune_a_bounded_amount_at_most_once_a_minute(
    make_jobs: MakeJobs, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "BATCH", 2)
    monkeypatch.setattr(retention, "TICK_BATCHES", 2)
    jobs = make_jobs(tasks=TASKS, retention=asyncjobs.Retention(cancelled=0))
    await jobs.queue_many([{"task": "ok"} for _ in range(7)])
    await jobs.cancel(queue="default")
    clock.advance(1)
    assert await jobs.prune_if_due() == 4
    assert await jobs.prune_if_due() == 0
    clock.advance(59)
    assert await jobs.prune_if_due() == 0
    clock.advance(1)
    assert await jobs.prune_if_due() == 3


async def test_autorun_ticks_prune(make_jobs: MakeJobs, clock: FakeClock) -> None:
    entry = asyncjobs.AutoRun(cron="0 0 1 1 *", wake_on_queue=False)
    jobs = make_jobs(tasks=TASKS, retention=KEEP, auto_run=[entry])
    await _finished(jobs)
    clock.advance(days=1)
    await jobs.start()  # its first tick comes at once
    with anyio.fail_after(6):
        while await jobs.find():
            await anyio.sleep(0.02)


@pytest.mark.slow
async def test_the_cli_prunes_with_the_apps_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = await make_cli(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", monkeypatch)
    (tmp_path / "keepapp.py").write_text(
        "import os\nimport asyncjobs\n"
        "jobs = asyncjobs.Jobs(database_url=os.environ['CLI_TEST_DATABASE_URL'], auto_run=[],"
        " retention=asyncjobs.Retention(cancelled=0))\n"
    )
    try:
        await cli.jobs.queue(task="hello")
        await cli.jobs.cancel(queue="default")
        refused = await cli("prune", "--app", "cliapp")
        text = await cli.ok("prune", "--app", "keepapp")
        again = await cli.json("prune", "--app", "keepapp")
    finally:
        await cli.jobs.stop()
    assert refused.returncode == 1
    assert refused.stderr.startswith("asyncjobs: error: the app has no retention configured")
    assert (text, again) == ("Pruned 1 finished job.\n", {"pruned": 0})
