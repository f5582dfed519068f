"""run() and run_by_id(): selection, ordering, limits, results, deletion on complete."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import anyio
import pytest

import asyncjobs
from asyncjobs import runner
from tests.conftest import FakeClock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]
ran: list[int] = []


@asyncjobs.task("record")
async def record(*, input: dict) -> dict:
    ran.append(input["n"])
    return {"n": input["n"]}


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()


async def _queue(jobs: asyncjobs.Jobs, clock: FakeClock, *ns: int, **kw: object) -> list[int]:
    ids = []
    for n in ns:
        ids.append((await jobs.queue(task="record", input={"n": n}, **kw)).id)  # type: ignore[arg-type]
        clock.advance(1)
    return ids


async def test_run_with_nothing_queued_reports_no_jobs(make_jobs: MakeJobs) -> None:
    result = await make_jobs(tasks=[record]).run()
    assert result == asyncjobs.RunResult(no_jobs_remaining=True)


async def test_run_completes_a_job(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record])
    (job_id,) = await _queue(jobs, clock, 7)
    result = await jobs.run()
    assert result.job_status == {job_id: "success"}
    assert not result.no_jobs_remaining
    assert result.remaining_jobs_from_queried == 0
    job = await jobs.get(job_id)
    assert job is not None
    assert job.status == "completed"
    assert job.completed_at == clock.now
    assert job.total_tried == 1
    assert job.processing_until is None
    assert job.task_status["record"]["1"].output == {"n": 7}


async def test_default_order_is_fifo_and_limit_caps(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, 1, 2, 3)
    await jobs.run(limit=2, sequential=True)
    assert ran == [1, 2]
    await jobs.run(sequential=True)
    assert ran == [1, 2, 3]


async def test_lifo_order(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record], processing_order="-created_at")
    await _queue(jobs, clock, 1, 2, 3)
    await jobs.run(sequential=True)
    assert ran == [3, 2, 1]
    ran.clear()
    await _queue(jobs, clock, 4, 5)
    await jobs.run(sequential=True, processing_order="created_at")
    assert ran == [4, 5]


async def test_order_per_queue_and_callable(make_jobs: MakeJobs, clock: FakeClock) -> None:
    order = asyncjobs.ProcessingOrder(default="created_at", queues={"lifo": "-created_at"})
    jobs = make_jobs(tasks=[record], processing_order=order)
    await _queue(jobs, clock, 1, 2, queue="lifo")
    await _queue(jobs, clock, 3, 4)
    await jobs.run(queue="lifo", sequential=True)
    await jobs.run(sequential=True)
    assert ran == [2, 1, 3, 4]
    seen: list[dict] = []

    def choose(args: dict) -> str:
        seen.append(args)
        return "-created_at"

    ran.clear()
    jobs2 = make_jobs(tasks=[record], processing_order=choose)
    await _queue(jobs2, clock, 5, 6)
    await jobs2.run(sequential=True)
    assert ran == [6, 5]
    assert seen[0]["queue"] == "default"


async def test_run_takes_only_its_queue_unless_all_queues(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, 1, queue="a")
    await _queue(jobs, clock, 2, queue="b")
    assert (await jobs.run()).no_jobs_remaining
    await jobs.run(queue="a")
    assert ran == [1]
    await jobs.run(all_queues=True)
    assert ran == [1, 2]


async def test_where_filters_the_claim(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record])
    ids = await _queue(jobs, clock, 1, 2, 3)
    await jobs.run(where={"input.n": 2})
    await jobs.run(where={"id": ids[2]})
    assert ran == [2, 3]
    with pytest.raises(ValueError, match="bogus"):
        await jobs.run(where={"bogus": 1})


async def test_wait_until_is_honoured_with_the_clock(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, 1, wait_until=clock.now + timedelta(seconds=30))
    assert (await jobs.run()).no_jobs_remaining
    clock.advance(28)  # queueing advanced the clock by 1 s already
    assert (await jobs.run()).no_jobs_remaining
    clock.advance(1)
    assert len((await jobs.run()).job_status) == 1


async def test_run_by_id_ignores_queue_but_not_runnability(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[record])
    (waiting,) = await _queue(jobs, clock, 1, wait_until=clock.now + timedelta(hours=1))
    (other,) = await _queue(jobs, clock, 2, queue="elsewhere")
    assert (await jobs.run_by_id(waiting)).no_jobs_remaining
    assert (await jobs.run_by_id(other)).job_status == {other: "success"}
    assert (await jobs.run_by_id(other)).no_jobs_remaining
    assert (await jobs.run_by_id(99999)).no_jobs_remaining


async def test_parallel_run_overlaps_jobs(make_jobs: MakeJobs) -> None:
    both_started = anyio.Event()
    started: list[int] = []

    @asyncjobs.task("meet")
    async def meet(*, input: dict) -> None:
        started.append(input["n"])
        if len(started) == 2:
            both_started.set()
        with anyio.fail_after(5):
            await both_started.wait()

    jobs = make_jobs(tasks=[meet])
    await jobs.queue_many([{"task": "meet", "input": {"n": n}} for n in (1, 2)])
    result = await jobs.run()
    assert set(result.job_status.values()) == {"success"}


async def test_every_job_of_a_large_batch_runs_at_once(make_jobs: MakeJobs) -> None:
    count = runner.START_GROUP * 2 + 5  # jobs start group by group; all must overlap
    all_started = anyio.Event()
    started: list[int] = []

    @asyncjobs.task("meet")
    async def meet(*, input: dict) -> None:
        started.append(input["n"])
        if len(started) == count:
            all_started.set()
        with anyio.fail_after(5):
            await all_started.wait()

    jobs = make_jobs(tasks=[meet])
    await jobs.queue_many([{"task": "meet", "input": {"n": n}} for n in range(count)])
    result = await jobs.run(limit=count)
    assert list(result.job_status.values()) == ["success"] * count
    assert started == list(range(count))


async def test_delete_job_on_complete_keeps_failed_jobs(make_jobs: MakeJobs) -> None:
    @asyncjobs.task("boom")
    async def boom(*, input: dict) -> None:
        raise RuntimeError("boom")

    jobs = make_jobs(tasks=[record, boom], delete_job_on_complete=True)
    ok = await jobs.queue(task="record", input={"n": 1})
    bad = await jobs.queue(task="boom")
    await jobs.run()
    assert await jobs.get(ok.id) is None
    failed = await jobs.get(bad.id)
    assert failed is not None
    assert failed.status == "failed"


async def test_run_rejects_bad_arguments(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[record])
    for limit in (0, -1, "3", True):
        with pytest.raises(ValueError, match="limit"):
            await jobs.run(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="sort"):
        await jobs.run(processing_order="attempts")
    with pytest.raises(ValueError, match="silent"):
        await jobs.run(silent={"debug": True})


async def test_run_refuses_a_queue_that_is_not_a_name(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, 1, queue="a")
    for queue in (None, ""):
        with pytest.raises(ValueError, match="queue"):
            await jobs.run(queue=queue)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="queue"):
            await jobs.handle_schedules(queue=queue)  # type: ignore[arg-type]
    assert ran == []


@pytest.mark.parametrize("bad", [True, 1.0, 1.5, None, "one", "1.5"])
async def test_calls_by_id_refuse_what_is_not_a_job_id(
    make_jobs: MakeJobs, clock: FakeClock, bad: object
) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, 1)
    for call in (jobs.run_by_id, jobs.cancel_by_id, jobs.retry_by_id, jobs.get):
        with pytest.raises((TypeError, ValueError), match="job id must be an int"):
            await call(bad)  # type: ignore[operator]
    assert ran == []
    assert [job.status for job in await jobs.find()] == ["queued"]


async def test_run_until_idle_drains(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[record])
    await _queue(jobs, clock, *range(25))
    results = await run_until_idle(jobs)
    assert sorted(ran) == list(range(25))
    assert results[-1].no_jobs_remaining


async def test_silent_run_logs_nothing(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    @asyncjobs.task("boom")
    async def boom(*, input: dict) -> None:
        raise RuntimeError("boom")

    jobs = make_jobs(tasks=[boom])
    await jobs.queue(task="boom")
    await jobs.queue(task="boom")
    with caplog.at_level("INFO", logger="asyncjobs"):
        await jobs.run(silent=True, limit=1)
        assert caplog.records == []
        await jobs.run(silent={"info": True})
    assert [r.levelname for r in caplog.records] == ["ERROR"]
    assert caplog.records[0].job_id is not None  # type: ignore[attr-defined]


async def test_completions_that_keep_coming_are_all_written(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each job finishes while the previous one's completion is being written, so one flush
    keeps going for longer than a write's grace: every write still gets the whole grace."""
    import time

    from asyncjobs import finisher

    grace = 0.05
    monkeypatch.setattr(finisher, "WRITE_GRACE", grace)
    count = 10
    finished = [anyio.Event() for _ in range(count)]

    @asyncjobs.task("chained")
    async def chained(*, input: dict) -> None:
        n = input["n"]
        if n:
            with anyio.fail_after(5):
                await finished[n - 1].wait()
            busy_until = time.monotonic() + grace / 5  # the flush in flight takes longer
            while time.monotonic() < busy_until:  # the host loop is busy
                pass
        finished[n].set()

    jobs = make_jobs(tasks=[chained])
    await jobs.queue_many([{"task": "chained", "input": {"n": n}} for n in range(count)])
    result = await jobs.run(limit=count)
    assert list(result.job_status.values()) == ["success"] * count
    assert {job.status for job in await jobs.find()} == {"completed"}
