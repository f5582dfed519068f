"""Concurrency keys: exclusive claims, claim order, supersedes; on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable
from contextlib import AsyncExitStack
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

import asyncjobs
from tests import keyed_worker
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
ROOT = Path(__file__).resolve().parent.parent


def doc_key(*, input: dict[str, Any]) -> str | None:
    return input.get("doc")


class Gate:
    """Handlers record their runs; those named in ``hold`` wait until released."""

    def __init__(self, *hold: int) -> None:
        self.hold = set(hold)
        self.ran: list[int] = []
        self.started = {n: anyio.Event() for n in hold}
        self.release = anyio.Event()

    async def __call__(self, *, input: dict[str, Any]) -> None:
        n = input["n"]
        self.ran.append(n)
        if n in self.hold:
            self.started[n].set()
            await self.release.wait()


class Barrier:
    """Handlers return only once ``parties`` of them run at the same time."""

    def __init__(self, parties: int) -> None:
        self.parties, self.arrived, self.all_in = parties, 0, anyio.Event()

    async def __call__(self, *, input: dict[str, Any]) -> None:
        self.arrived += 1
        if self.arrived == self.parties:
            self.all_in.set()
        with anyio.fail_after(5):
            await self.all_in.wait()


def keyed(handler: Any, key: Any = doc_key, **options: Any) -> asyncjobs.Task:
    return asyncjobs.Task("sync-doc", handler, concurrency=asyncjobs.Concurrency(key, **options))


async def queue_docs(jobs: asyncjobs.Jobs, *docs: str | None, **options: Any) -> list[int]:
    ids = []
    for n, doc in enumerate(docs, start=1):
        job = await jobs.queue(task="sync-doc", input={"doc": doc, "n": n}, **options)
        ids.append(job.id)
    return ids


# -- claims ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("order", "expected"), [("created_at", [1, 2, 3]), ("-created_at", [3, 2, 1])]
)
async def test_jobs_of_one_key_run_one_per_claim_in_claim_order(
    make_jobs: MakeJobs, order: str, expected: list[int]
) -> None:
    gate = Gate()
    jobs = make_jobs(tasks=[keyed(gate)], processing_order=order)
    await queue_docs(jobs, "a", "a", "a")
    ran_per_call = [len((await jobs.run(limit=10)).job_status) for _ in range(3)]
    assert ran_per_call == [1, 1, 1]
    assert gate.ran == expected
    assert (await jobs.run()).no_jobs_remaining


async def test_limit_counts_only_jobs_that_run(make_jobs: MakeJobs) -> None:
    gate = Gate()
    jobs = make_jobs(tasks=[keyed(gate)])
    await queue_docs(jobs, "a", "a", "b", None, None)
    result = await jobs.run(limit=3)
    assert sorted(gate.ran) == [1, 3, 4]
    assert list(result.job_status.values()) == ["success"] * 3
    await jobs.run(limit=10)
    assert sorted(gate.ran) == [1, 2, 3, 4, 5]


async def test_a_running_key_blocks_that_key_in_every_queue(make_jobs: MakeJobs) -> None:
    gate = Gate(1)
    jobs = make_jobs(tasks=[keyed(gate)])
    await jobs.queue(task="sync-doc", input={"doc": "a", "n": 1}, queue="q1")
    blocked = await jobs.queue(task="sync-doc", input={"doc": "a", "n": 2}, queue="q2")
    await jobs.queue(task="sync-doc", input={"doc": "b", "n": 3}, queue="q2")
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: jobs.run(queue="q1"))
        await gate.started[1].wait()
        assert len((await jobs.run(queue="q2")).job_status) == 1
        assert (await jobs.run(all_queues=True)).no_jobs_remaining
        assert (await jobs.run_by_id(blocked.id)).no_jobs_remaining
        gate.release.set()
    await jobs.run(queue="q2")
    assert gate.ran == [1, 3, 2]


async def test_a_key_that_includes_the_queue_does_not_block_other_queues(
    make_jobs: MakeJobs,
) -> None:
    gate = Gate(1)

    def per_queue(*, input: dict[str, Any], queue: str) -> str:
        return f"{queue}:{input['doc']}"

    jobs = make_jobs(tasks=[keyed(gate, per_queue)])
    first = await jobs.queue(task="sync-doc", input={"doc": "a", "n": 1}, queue="q1")
    await jobs.queue(task="sync-doc", input={"doc": "a", "n": 2}, queue="q2")
    assert first.concurrency_key == "q1:a"
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: jobs.run(queue="q1"))
        await gate.started[1].wait()
        assert list((await jobs.run(queue="q2")).job_status.values()) == ["success"]
        gate.release.set()
    assert gate.ran == [1, 2]


async def test_different_keys_run_in_parallel(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[keyed(Barrier(3))])
    await queue_docs(jobs, "a", "b", "c")
    result = await jobs.run(limit=10)
    assert list(result.job_status.values()) == ["success"] * 3


async def test_non_exclusive_jobs_of_one_key_run_together(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[keyed(Barrier(3), exclusive=False)])
    await queue_docs(jobs, "a", "a", "a")
    result = await jobs.run(limit=10)
    assert list(result.job_status.values()) == ["success"] * 3


async def test_a_workflow_key_blocks_like_a_task_key(make_jobs: MakeJobs) -> None:
    async def handler(*, input: dict[str, Any]) -> None:
        return None

    flow = asyncjobs.Workflow("flow", handler, concurrency=doc_key)
    jobs = make_jobs(workflows=[flow])
    for _ in range(2):
        await jobs.queue(workflow="flow", input={"doc": "a"})
    assert len((await jobs.run(limit=10)).job_status) == 1
    assert len((await jobs.run(limit=10)).job_status) == 1


async def test_the_key_callable_receives_input_and_queue(make_jobs: MakeJobs) -> None:
    seen: list[tuple[Any, str]] = []

    def key(*, input: dict[str, Any], queue: str) -> str | None:
        seen.append((input, queue))
        return input.get("doc")

    task = asyncjobs.Task("sync-doc", Gate(), concurrency=key)
    jobs = make_jobs(tasks=[task])
    job = await jobs.queue(task="sync-doc", input={"doc": "x"}, queue="q")
    unkeyed = await jobs.queue(task="sync-doc", input={})
    assert seen == [({"doc": "x"}, "q"), ({}, "default")]
    assert (job.concurrency_key, unkeyed.concurrency_key) == ("x", None)


async def test_a_key_that_is_not_a_string_stores_nothing(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[keyed(Gate(), lambda *, input: 42)])
    with pytest.raises(TypeError, match="must return a str or None"):
        await jobs.queue(task="sync-doc", input={"n": 1})
    assert await jobs.find() == []


# -- supersedes --------------------------------------------------------------------------


async def test_supersedes_keeps_only_the_newest_pending_job(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[keyed(Gate(), supersedes=True)])
    ids = await queue_docs(jobs, "a", "b", "a", "a")
    assert sorted(j.id for j in await jobs.find()) == [ids[1], ids[3]]


async def test_supersedes_within_one_queue_many_keeps_the_last(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[keyed(Gate(), supersedes=True)])
    items = [{"task": "sync-doc", "input": {"doc": "a", "n": n}} for n in (1, 2, 3)]
    queued = await jobs.queue_many(items)
    assert [j.id for j in await jobs.find()] == [queued[-1].id]


async def test_supersedes_keeps_started_and_finished_jobs(make_jobs: MakeJobs) -> None:
    async def handler(*, input: dict[str, Any]) -> None:
        if input["mode"] == "fail":
            raise RuntimeError("boom")
        if input["mode"] == "block":
            started.set()
            await release.wait()

    started, release = anyio.Event(), anyio.Event()
    task = asyncjobs.Task(
        "sync-doc",
        handler,
        retries=1,
        concurrency=asyncjobs.Concurrency(doc_key, supersedes=True),
    )
    jobs = make_jobs(tasks=[task])

    async def queue(mode: str) -> int:
        return (await jobs.queue(task="sync-doc", input={"doc": "a", "mode": mode})).id

    completed = await queue("ok")
    await jobs.run_by_id(completed)
    failed = await queue("fail")
    await jobs.run_by_id(failed)
    await jobs.run_by_id(failed)
    retrying = await queue("fail")
    await jobs.run_by_id(retrying)
    cancelled = await queue("ok")
    await jobs.cancel_by_id(cancelled)
    running = await queue("block")
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.run_by_id, running)
        await started.wait()
        newest = await queue("ok")
        statuses = {j.id: j.status for j in await jobs.find()}
        release.set()
    assert statuses == {
        completed: "completed",
        failed: "failed",
        retrying: "queued",
        cancelled: "cancelled",
        running: "processing",
        newest: "queued",
    }
    assert (await jobs.get(retrying)).total_tried == 1  # type: ignore[union-attr]
    pending = await queue("ok")
    assert await jobs.get(newest) is None
    assert await jobs.get(pending) is not None


# -- racing instances --------------------------------------------------------------------


def assert_no_overlap(intervals: list[tuple[str, float, float]]) -> None:
    by_key: dict[str, list[tuple[float, float]]] = {}
    for key, start, end in intervals:
        by_key.setdefault(key, []).append((start, end))
    for key, spans in by_key.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two jobs of key {key!r} overlapped"


async def test_two_instances_never_run_one_key_at_once(make_jobs: MakeJobs) -> None:
    intervals: list[tuple[str, float, float]] = []

    async def handler(*, input: dict[str, Any]) -> None:
        start = anyio.current_time()
        await anyio.sleep(0.01)
        intervals.append((input["doc"], start, anyio.current_time()))

    first, second = (make_jobs(tasks=[keyed(handler)]) for _ in range(2))
    docs = ["a"] * 8 + ["b"] * 4
    for n, doc in enumerate(docs):
        await first.queue(task="sync-doc", input={"doc": doc}, queue=f"q{n % 2}")

    async def work(jobs: asyncjobs.Jobs, **options: Any) -> None:
        while len(intervals) < len(docs):
            if (await jobs.run(limit=5, **options)).no_jobs_remaining:
                await anyio.sleep(0.002)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: work(first, all_queues=True))
            tg.start_soon(lambda: work(second, queue="q1"))
            tg.start_soon(lambda: work(second, all_queues=True, processing_order="-created_at"))
    assert len(intervals) == len(docs)
    assert_no_overlap(intervals)


@pytest.mark.slow
async def test_two_processes_never_run_one_key_at_once(
    make_jobs: MakeJobs, backend: str, database_url: str
) -> None:
    if backend != "postgres":
        pytest.skip("several processes on one database is the PostgreSQL deployment")
    jobs = make_jobs(tasks=[keyed_worker.sync_doc])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
    count = 16
    command = [sys.executable, "-m", "tests.keyed_worker", database_url, str(count)]
    async with AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(
                await anyio.open_process([*command, order], env=env, stderr=None)
            )
            for order in ("created_at", "-created_at")
        ]
        with anyio.fail_after(40):
            for worker in workers:
                assert worker.stdout is not None
                ready = await BufferedByteReceiveStream(worker.stdout).receive_until(b"\n", 100)
                assert ready == b"ready"
            items = [
                {"task": "sync-doc", "input": {"doc": "ab"[n % 4 == 0]}, "queue": f"q{n % 3}"}
                for n in range(count)
            ]
            await jobs.queue_many(items)
            codes = [await worker.wait() for worker in workers]
    assert codes == [0, 0]
    done = await jobs.find(where={"status": "completed"}, limit=count + 1)
    outputs = [job.log[0].output for job in done]
    assert len(outputs) == count
    assert {o["pid"] for o in outputs} == {w.pid for w in workers}
    assert_no_overlap([(o["doc"], o["start"], o["end"]) for o in outputs])


async def test_scheduled_jobs_supersede_their_pending_predecessor(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    def always(**_: Any) -> dict[str, Any]:
        return {"input": {"doc": "a"}}

    task = asyncjobs.Task(
        "sync-doc",
        Gate(),
        schedule=asyncjobs.Schedule("* * * * *", before_schedule=always),
        concurrency=asyncjobs.Concurrency(doc_key, supersedes=True),
    )
    jobs = make_jobs(tasks=[task])
    first = await jobs.handle_schedules()
    clock.advance(60)
    second = await jobs.handle_schedules()
    assert (first.queued, second.queued) == ([("sync-doc", "default")],) * 2
    remaining = await jobs.find()
    assert len(remaining) == 1
    assert remaining[0].wait_until == clock.now.replace(second=0) + timedelta(minutes=1)


async def test_supersedes_leaves_one_pending_job_however_many_queue_at_once(
    make_jobs: MakeJobs,
) -> None:
    instances = [make_jobs(tasks=[keyed(Gate(), supersedes=True)]) for _ in range(2)]
    for jobs in instances:
        await jobs.start(auto_run=False)
    async with anyio.create_task_group() as tg:
        for n in range(20):
            jobs = instances[n % 2]
            tg.start_soon(lambda j=jobs, n=n: j.queue(task="sync-doc", input={"doc": "a", "n": n}))
    assert len(await instances[0].find()) == 1
