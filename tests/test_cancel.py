"""Cancelling running jobs: handlers stop promptly and write nothing more; SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncjobs
from asyncjobs import runner
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
PROMPT = 2.0  # seconds; "within about a second" with room for a loaded machine


class Steps:
    """A workflow whose step "2" blocks until cancelled; step "3" must never start."""

    def __init__(self, *, shield: bool = False) -> None:
        self.started = anyio.Event()
        self.release = anyio.Event()
        self.reached: list[str] = []
        self.shield = shield
        self.interrupted = False

    async def blocking(self) -> dict[str, Any]:
        self.started.set()
        try:
            with anyio.CancelScope(shield=self.shield):
                await self.release.wait()
        except anyio.get_cancelled_exc_class():
            self.interrupted = True
            raise
        return {"late": True}

    async def handler(self, *, inline_task: Any) -> None:
        await inline_task("1", task=lambda: {"one": 1})
        await inline_task("2", task=self.blocking)
        self.reached.append("3")
        await inline_task("3", task=lambda: {"three": 3})

    def workflow(self) -> asyncjobs.Workflow:
        return asyncjobs.Workflow("flow", self.handler)


async def run_and_cancel(
    worker: asyncjobs.Jobs, canceller: asyncjobs.Jobs, steps: Steps, cancel: Callable[..., Any]
) -> tuple[asyncjobs.RunResult, float]:
    """Run the job on ``worker``, cancel it through ``canceller``; return the result and delay."""
    results: list[asyncjobs.RunResult] = []
    finished = anyio.Event()

    async def run() -> None:
        results.append(await worker.run())
        finished.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            await steps.started.wait()
            assert await cancel(canceller)
            cancelled_at = time.monotonic()
            await finished.wait()
            elapsed = time.monotonic() - cancelled_at
    return results[0], elapsed


async def assert_cancelled_after_step_one(jobs: asyncjobs.Jobs, job_id: int) -> None:
    job = await jobs.get(job_id)
    assert job is not None
    assert job.status == "cancelled"
    assert job.error is not None and job.error["cancelled"] is True
    assert job.processing_until is None
    assert [(e.task_id, e.state) for e in job.log] == [("1", "succeeded")]


async def test_a_cancelled_running_job_stops_within_a_second(make_jobs: MakeJobs) -> None:
    steps = Steps()
    jobs = make_jobs(workflows=[steps.workflow()])
    job = await jobs.queue(workflow="flow")
    result, elapsed = await run_and_cancel(jobs, jobs, steps, lambda j: j.cancel_by_id(job.id))
    assert elapsed < PROMPT
    assert steps.interrupted
    assert steps.reached == []
    assert result.job_status == {}
    await assert_cancelled_after_step_one(jobs, job.id)
    assert (await jobs.run()).no_jobs_remaining


async def test_a_job_cancelled_before_its_turn_never_gets_past_its_first_wait(
    make_jobs: MakeJobs,
) -> None:
    ids: list[int] = []
    reached: list[str] = []

    @asyncjobs.task("canceller")
    async def canceller(*, jobs: asyncjobs.Jobs) -> None:
        assert await jobs.cancel_by_id(ids[1])

    @asyncjobs.task("victim")
    async def victim() -> None:
        await anyio.lowlevel.checkpoint()
        reached.append("victim")

    jobs = make_jobs(tasks=[canceller, victim])
    for slug in ("canceller", "victim"):
        ids.append((await jobs.queue(task=slug)).id)
    result = await jobs.run(sequential=True)
    assert result.job_status == {ids[0]: "success"}
    assert reached == []
    cancelled = await jobs.get(ids[1])
    assert cancelled is not None and cancelled.status == "cancelled"


async def test_cancel_with_where_stops_the_matching_running_job(make_jobs: MakeJobs) -> None:
    steps = Steps()
    jobs = make_jobs(workflows=[steps.workflow()])
    job = await jobs.queue(workflow="flow")
    _, elapsed = await run_and_cancel(
        jobs, jobs, steps, lambda j: j.cancel(where={"workflow_slug": "flow"})
    )
    assert elapsed < PROMPT
    assert steps.interrupted
    await assert_cancelled_after_step_one(jobs, job.id)


async def test_a_job_cancelled_by_another_instance_stops_within_a_second(
    make_jobs: MakeJobs,
) -> None:
    steps = Steps()
    worker = make_jobs(workflows=[steps.workflow()])
    other = make_jobs(workflows=[steps.workflow()])
    job = await other.queue(workflow="flow")
    result, elapsed = await run_and_cancel(worker, other, steps, lambda j: j.cancel_by_id(job.id))
    assert elapsed < PROMPT
    assert steps.interrupted
    assert steps.reached == []
    assert result.job_status == {}
    await assert_cancelled_after_step_one(worker, job.id)


async def test_a_worker_whose_job_was_cancelled_writes_nothing_more(make_jobs: MakeJobs) -> None:
    steps = Steps(shield=True)
    worker = make_jobs(workflows=[steps.workflow()])
    other = make_jobs(workflows=[steps.workflow()])
    job = await other.queue(workflow="flow")

    async def cancel_then_finish_the_step(jobs: asyncjobs.Jobs) -> bool:
        cancelled = await jobs.cancel_by_id(job.id)
        steps.release.set()  # the shielded step now returns and tries to log its output
        return cancelled

    result, _ = await run_and_cancel(worker, other, steps, cancel_then_finish_the_step)
    assert result.job_status == {}
    assert steps.reached == []
    await assert_cancelled_after_step_one(worker, job.id)


async def test_jobs_that_are_not_cancelled_keep_running_across_checks(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CANCEL_CHECK_INTERVAL", 0.01)
    checks = 0

    async def slow(*, input: dict[str, Any]) -> dict[str, Any]:
        with anyio.fail_after(10):  # real time: until several cancellation checks have passed
            while checks < 3:
                await anyio.sleep(0.01)
        return {"n": input["n"]}

    jobs = make_jobs(tasks=[asyncjobs.Task("slow", slow)])
    original = jobs.store.owned

    async def counting(ids: Any, token: str) -> set[int]:
        nonlocal checks
        checks += 1
        return await original(ids, token)

    monkeypatch.setattr(jobs.store, "owned", counting)
    for n in range(3):
        await jobs.queue(task="slow", input={"n": n})
    result = await jobs.run(limit=10)
    assert list(result.job_status.values()) == ["success"] * 3
    assert checks >= 3


async def test_a_job_finishing_while_the_heartbeat_checks_is_reported(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner, "CANCEL_CHECK_INTERVAL", 0.01)

    async def quick() -> None:
        return None

    jobs = make_jobs(tasks=[asyncjobs.Task("quick", quick)])
    original = jobs.store.update_owned

    async def slow_to_answer(job_id: int, token: str, **options: Any) -> bool:
        owned = await original(job_id, token, **options)
        await anyio.sleep(0.1)  # the final write has committed; checks see the token gone
        return owned

    monkeypatch.setattr(jobs.store, "update_owned", slow_to_answer)
    job = await jobs.queue(task="quick")
    assert (await jobs.run()).job_status == {job.id: "success"}


async def wait_for(predicate: Callable[[], Any], polls: int = 500) -> None:
    """Poll the database until ``predicate`` holds (about five seconds at most)."""
    for _ in range(polls):
        if await predicate():
            return
        await anyio.sleep(0.01)
    raise AssertionError("condition not reached in time")


SHORT_LEASE = asyncjobs.Lease(duration=0.3, safety_buffer=0.05)  # renewed every 0.1 s


async def test_the_heartbeat_renews_the_lease_of_a_running_job(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    steps = Steps()
    jobs = make_jobs(workflows=[steps.workflow()], lease=SHORT_LEASE)
    job = await jobs.queue(workflow="flow")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await steps.started.wait()
        renewed_until = clock.advance(0.2) + timedelta(seconds=0.3)

        async def renewed() -> bool:
            current = await jobs.get(job.id)
            return current is not None and current.processing_until == renewed_until

        await wait_for(renewed)
        steps.release.set()
    assert (await jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]


async def test_a_job_whose_lease_expired_is_stopped_and_runs_again_elsewhere(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    steps = Steps()
    stale = make_jobs(workflows=[steps.workflow()], lease=SHORT_LEASE)
    fresh = make_jobs(workflows=[steps.workflow()], lease=SHORT_LEASE)
    job = await stale.queue(workflow="flow")
    with anyio.fail_after(PROMPT + 1):
        async with anyio.create_task_group() as tg:
            tg.start_soon(stale.run)
            await steps.started.wait()
            clock.advance(1)  # the lease ran out: the next renewal finds it gone
    assert steps.interrupted
    steps.started, steps.release = anyio.Event(), anyio.Event()
    steps.release.set()
    assert (await fresh.run()).job_status == {job.id: "success"}
    stored = await fresh.get(job.id)
    assert stored is not None
    assert [e.task_id for e in stored.log] == ["1", "2", "3"]
    assert stored.total_tried == 1


async def test_cancel_by_id_of_a_finished_or_missing_job_is_false(make_jobs: MakeJobs) -> None:
    async def noop() -> None:
        return None

    jobs = make_jobs(tasks=[asyncjobs.Task("noop", noop)])
    job = await jobs.queue(task="noop")
    await jobs.run()
    assert await jobs.cancel_by_id(job.id) is False
    assert await jobs.cancel_by_id(job.id + 100) is False
    assert (await jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]


async def test_a_handler_raising_job_cancelled_cancels_without_a_try(make_jobs: MakeJobs) -> None:
    async def give_up(*, inline_task: Any) -> None:
        await inline_task("1", task=lambda: {"one": 1})
        raise asyncjobs.JobCancelled("no longer needed")

    jobs = make_jobs(workflows=[asyncjobs.Workflow("flow", give_up, retries=3)])
    job = await jobs.queue(workflow="flow")
    result = await jobs.run()
    assert result.job_status == {job.id: "error-reached-max-retries"}
    stored = await jobs.get(job.id)
    assert stored is not None
    assert stored.status == "cancelled"
    assert stored.total_tried == 0
    assert stored.error == {
        "name": "JobCancelled",
        "message": "no longer needed",
        "cancelled": True,
    }
    assert (await jobs.run()).no_jobs_remaining
