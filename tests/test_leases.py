"""Leases: atomic fenced claims, renewal, expiry, and hand-back on stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncjobs
from asyncjobs.jobs import utcnow
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
LEASE = asyncjobs.Lease(duration=60, safety_buffer=5)


class Gate:
    """Lets a test hold a handler at a known point."""

    def __init__(self) -> None:
        self.reached = anyio.Event()
        self.release = anyio.Event()

    async def hold(self) -> None:
        self.reached.set()
        await self.release.wait()


def gated_workflow(gate: Gate, executed: list[str]) -> tuple[asyncjobs.Task, asyncjobs.Workflow]:
    @asyncjobs.task("step")
    async def step(*, input: dict) -> dict:
        executed.append(input["name"])
        return {"name": input["name"]}

    @asyncjobs.workflow("two-steps")
    async def two_steps(*, tasks: Any) -> None:
        await tasks.step("1", input={"name": "first"})
        await gate.hold()
        await tasks.step("2", input={"name": "second"})

    return step, two_steps


async def test_a_leased_job_is_not_claimed_twice(make_jobs: MakeJobs, clock: FakeClock) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    first = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    second = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await first.queue(workflow="two-steps")
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await gate.reached.wait()
        assert (await second.run()).no_jobs_remaining
        snapshot = await second.get(job.id)
        assert snapshot is not None and snapshot.status == "processing"
        gate.release.set()
    assert executed == ["first", "second"]


async def test_expired_lease_resumes_without_rerunning_steps_or_counting_a_try(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    stalled = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    rescuer = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await stalled.queue(workflow="two-steps")
    results: list[asyncjobs.RunResult] = []

    async def run_stalled() -> None:
        results.append(await stalled.run())

    async with anyio.create_task_group() as tg:
        tg.start_soon(run_stalled)
        await gate.reached.wait()
        clock.advance(LEASE.duration)  # type: ignore[arg-type]
        gate2 = Gate()
        gate2.release.set()
        rescue_step, rescue_flow = gated_workflow(gate2, executed)
        rescue = make_jobs(tasks=[rescue_step], workflows=[rescue_flow], lease=LEASE)
        assert (await rescue.run()).job_status == {job.id: "success"}
        gate.release.set()  # the stalled worker wakes up and must write nothing more
    assert results == [asyncjobs.RunResult(job_status={}, remaining_jobs_from_queried=0)]
    assert executed == ["first", "second", "second"]
    done = await rescuer.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("completed", 1)
    assert [e.task_id for e in done.log] == ["1", "2"]


async def test_writes_inside_the_safety_buffer_are_refused(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    jobs = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await jobs.queue(workflow="two-steps")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await gate.reached.wait()
        clock.advance(56)  # 4 s of lease left: less than the 5 s safety buffer
        gate.release.set()
    current = await jobs.get(job.id)
    assert current is not None
    assert [e.task_id for e in current.log] == ["1"]
    assert current.total_tried == 0


async def test_a_completion_inside_the_safety_buffer_is_refused(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.task("late")
    async def late() -> None:
        clock.advance(56)  # 4 s of lease left: less than the 5 s safety buffer

    jobs = make_jobs(tasks=[late], lease=LEASE)
    job = await jobs.queue(task="late")
    assert (await jobs.run()).job_status == {}
    current = await jobs.get(job.id)
    assert current is not None
    assert (current.status, current.total_tried, current.log) == ("processing", 0, [])


async def test_stop_hands_back_unfinished_jobs(make_jobs: MakeJobs, clock: FakeClock) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    jobs = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await jobs.queue(workflow="two-steps")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await gate.reached.wait()
        with anyio.fail_after(5):
            await jobs.stop(timeout=0.05)
    handed_back = await jobs.get(job.id)
    assert handed_back is not None
    assert (handed_back.status, handed_back.processing_until) == ("queued", None)
    assert handed_back.total_tried == 0
    gate.release.set()
    assert (await jobs.run()).job_status == {job.id: "success"}
    assert executed == ["first", "second"]


async def test_lifespan_stop_timeout_bounds_the_wait_for_running_jobs(
    make_jobs: MakeJobs,
) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    jobs = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await jobs.queue(workflow="two-steps")
    with anyio.fail_after(5):  # the default grace period would be 10 s
        async with (
            anyio.create_task_group() as tg,
            jobs.lifespan(auto_run=False, stop_timeout=0.05),
        ):
            tg.start_soon(jobs.run)
            await gate.reached.wait()
    handed_back = await jobs.get(job.id)
    assert handed_back is not None
    assert (handed_back.status, handed_back.total_tried) == ("queued", 0)


async def test_stop_lets_running_jobs_finish_within_the_timeout(make_jobs: MakeJobs) -> None:
    gate, executed = Gate(), []
    step, flow = gated_workflow(gate, executed)
    jobs = make_jobs(tasks=[step], workflows=[flow], lease=LEASE)
    job = await jobs.queue(workflow="two-steps")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await gate.reached.wait()
        tg.start_soon(jobs.stop)
        await anyio.lowlevel.checkpoint()
        gate.release.set()
    await jobs.start(auto_run=False)  # a stopped Jobs can be started again
    done = await jobs.get(job.id)
    assert done is not None and done.status == "completed"


@pytest.mark.timeout(20)
async def test_heartbeat_renews_the_lease_of_a_long_job(make_jobs: MakeJobs) -> None:
    # Generous margins: the heartbeat must renew on a loaded machine too.
    short = asyncjobs.Lease(duration=1.2, safety_buffer=0.2)
    started = anyio.Event()

    @asyncjobs.task("slow")
    async def slow() -> None:
        started.set()
        await anyio.sleep(2.5)

    jobs = make_jobs(tasks=[slow], lease=short, clock=utcnow)
    other = make_jobs(tasks=[slow], lease=short, clock=utcnow)
    job = await jobs.queue(task="slow")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run)
        await started.wait()
        for _ in range(4):
            await anyio.sleep(0.5)
            assert (await other.run()).no_jobs_remaining
    done = await jobs.get(job.id)
    assert done is not None and done.status == "completed"
