"""Durable waits and deleted jobs: signals go with their job, and a child superseded before it
ran fails its parent instead of leaving it suspended; on both backends."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncjobs
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
DAY = 86_400


@asyncjobs.workflow("listener")
async def listener(*, wait_for_signal: Any) -> dict[str, Any]:
    return {"got": await wait_for_signal("a", "go")}


@asyncjobs.task("note")
async def note(*, input: dict[str, Any]) -> dict[str, Any]:
    return {"noted": input["n"]}


def by_doc(*, input: dict[str, Any]) -> str:
    return f"doc-{input['doc']}"


sync_doc = asyncjobs.Task(
    "sync-doc", note, concurrency=asyncjobs.Concurrency(by_doc, supersedes=True)
)


@asyncjobs.workflow("syncing-parent")
async def syncing_parent(*, run_child: Any) -> dict[str, Any]:
    try:
        return {"out": await run_child("c", task="sync-doc", input={"doc": 1, "n": 1})}
    except asyncjobs.ChildFailed as exc:
        return {"child_failed": exc.child_id, "error": exc.error}


async def stored_signals(jobs: asyncjobs.Jobs) -> list[tuple[int, str]]:
    async with jobs.store.read() as conn:
        found = await conn.exec_driver_sql("SELECT job_id, topic FROM asyncjobs_signals")
        return sorted((row[0], row[1]) for row in found)


async def idle(jobs: asyncjobs.Jobs) -> dict[int, str]:
    statuses: dict[int, str] = {}
    for _ in range(10):
        result = await jobs.run(all_queues=True)
        statuses.update(result.job_status)
        if result.no_jobs_remaining:
            return statuses
    raise AssertionError("not idle")


async def test_pruning_a_job_deletes_its_signals(make_jobs: MakeJobs, clock: FakeClock) -> None:
    retention = asyncjobs.Retention(completed=DAY, cancelled=DAY)
    jobs = make_jobs(workflows=[listener], retention=retention)
    done, cancelled, kept = [(await jobs.queue(workflow="listener")).id for _ in range(3)]
    await idle(jobs)
    assert await jobs.signal(done, "go", {"n": 1}) and await jobs.signal(done, "go", {"n": 2})
    assert await jobs.signal(cancelled, "go") and await jobs.signal(kept, "other")
    assert await jobs.cancel_by_id(cancelled)
    await idle(jobs)
    assert await jobs.prune() == 0
    clock.advance(DAY + 1)
    assert await jobs.prune() == 2  # not the suspended one
    assert await stored_signals(jobs) == [(kept, "other")]


async def test_a_job_deleted_on_completion_leaves_no_signals(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[listener], delete_job_on_complete=True)
    job = await jobs.queue(workflow="listener")
    await idle(jobs)
    assert await jobs.signal(job.id, "go", {"n": 1})
    assert await idle(jobs) == {job.id: "success"}
    assert await jobs.get(job.id) is None
    assert await stored_signals(jobs) == []


async def test_a_parent_deleted_on_completion_leaves_no_child_outcome(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[sync_doc], workflows=[syncing_parent], delete_job_on_complete=True)
    job = await jobs.queue(workflow="syncing-parent")
    await idle(jobs)
    assert await jobs.get(job.id) is None
    assert await stored_signals(jobs) == []


async def test_a_child_superseded_before_it_ran_fails_its_parent(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[sync_doc], workflows=[syncing_parent])
    job = await jobs.queue(workflow="syncing-parent")
    assert (await jobs.run()).job_status == {job.id: "suspended"}
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    newer = await jobs.queue(task="sync-doc", input={"doc": 1, "n": 2})
    assert await jobs.get(child.id) is None  # superseded, never ran
    suspended = await jobs.get(job.id)
    assert suspended is not None and suspended.status == "queued"  # woken by the deletion
    assert await idle(jobs) == {job.id: "success", newer.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.output is not None
    assert done.output["child_failed"] == child.id
    assert done.output["error"]["name"] == "Superseded"
    assert f"job {child.id} was superseded" in done.output["error"]["message"]
