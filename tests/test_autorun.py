"""autoRun inside the host event loop: ticks, wakes, should_auto_run, logging and stop()."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncjobs
from asyncjobs.autorun import CLOSE_GRACE, TICK_ERROR
from asyncjobs.jobs import utcnow
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
EVERY_SECOND = "* * * * * *"
YEARLY = "0 0 1 1 *"  # never fires during a test: ticks come from wake_on_queue only
sqlite_only = pytest.mark.parametrize("backend", ["sqlite"])


class Recorder:
    """A task handler that notes which Jobs ran each job, and lets a test wait for them."""

    def __init__(self) -> None:
        self.ran: list[tuple[asyncjobs.Jobs, dict[str, Any]]] = []
        self.task = asyncjobs.Task("record", self.handle)

    async def handle(self, *, input: dict[str, Any], jobs: asyncjobs.Jobs) -> None:
        self.ran.append((jobs, input))

    async def wait_for(self, count: int, within: float = 6.0) -> float:
        """Seconds until ``count`` jobs ran; fails after ``within``."""
        started = time.monotonic()
        await until(lambda: len(self.ran) >= count, within)
        return time.monotonic() - started


async def until(predicate: Callable[[], bool], within: float = 6.0) -> None:
    """Poll ``predicate`` until it holds; fails after ``within`` seconds."""
    with anyio.fail_after(within):
        while not predicate():
            await anyio.sleep(0.02)


def auto(cron: str = YEARLY, **options: Any) -> list[asyncjobs.AutoRun]:
    return [asyncjobs.AutoRun(cron=cron, **options)]


def fire(jobs: asyncjobs.Jobs) -> None:
    """What the first entry's timer does at its cron time (a tick that handles schedules)."""
    assert jobs._timers is not None
    jobs._timers._lanes[0].fire()


# -- installing timers ---------------------------------------------------------------------


async def test_start_with_auto_run_false_installs_no_timers(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(auto_run=auto())
    await jobs.start(auto_run=False)
    assert jobs._timers is None


@pytest.mark.parametrize("answer", [False, "async-false"])
async def test_should_auto_run_false_at_start_installs_no_timers(
    make_jobs: MakeJobs, answer: object
) -> None:
    async def async_false(jobs: asyncjobs.Jobs) -> bool:
        return False

    should = async_false if answer == "async-false" else (lambda jobs: False)
    jobs = make_jobs(auto_run=auto(), should_auto_run=should)
    await jobs.start()
    assert jobs._timers is None


async def test_auto_run_may_be_a_callable_of_jobs(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    seen: list[asyncjobs.Jobs] = []

    async def entries(jobs: asyncjobs.Jobs) -> list[asyncjobs.AutoRun]:
        seen.append(jobs)
        return auto()

    jobs = make_jobs(tasks=[recorder.task], auto_run=entries)
    await jobs.start()
    await jobs.queue(task="record")
    await recorder.wait_for(1)
    assert seen == [jobs]


async def test_stop_is_idempotent_and_jobs_can_start_again(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto())
    await jobs.start()
    await jobs.stop()
    await jobs.stop()
    await jobs.start()
    await jobs.queue(task="record")
    await recorder.wait_for(1)


async def test_start_ticks_each_entry_once_so_a_backlog_runs_at_once(
    make_jobs: MakeJobs,
) -> None:
    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto("* * * * *", wake_on_queue=False))
    await jobs.queue_many([{"task": "record", "input": {"n": n}} for n in range(3)])
    await jobs.start()  # the injected clock never reaches the next minute
    await recorder.wait_for(3)


async def test_jobs_handed_back_by_a_stopped_instance_start_at_once_on_another(
    make_jobs: MakeJobs,
) -> None:
    started = anyio.Event()

    async def stuck(*, jobs: asyncjobs.Jobs) -> None:
        if not started.is_set():
            started.set()
            await anyio.sleep_forever()
        recorder.ran.append((jobs, {}))

    recorder = Recorder()
    task = asyncjobs.Task("stuck", stuck)
    first = make_jobs(tasks=[task])
    second = make_jobs(tasks=[task], auto_run=auto("* * * * *", wake_on_queue=False))
    await first.queue(task="stuck")
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await started.wait()
        await first.stop(timeout=0.1)  # hands the job back
    await second.start()
    await recorder.wait_for(1)
    assert recorder.ran[0][0] is second


# -- ticks woken by queueing (no waiting for the clock) ------------------------------------


async def test_queueing_on_a_covered_queue_wakes_a_tick(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(queue="mail"))
    await jobs.start()
    await jobs.queue(task="record", queue="mail")
    await recorder.wait_for(1)
    await jobs.stop()  # drains: the job's completion is written
    assert (await jobs.find())[0].status == "completed"


async def test_jobs_on_other_queues_or_waiting_do_not_wake(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(queue="mail"))
    await jobs.start()
    await jobs.queue(task="record", queue="other")
    await jobs.queue(task="record", queue="mail", wait_until=clock.now + timedelta(minutes=5))
    await jobs.queue(task="record", queue="mail", input={"last": True})
    await recorder.wait_for(1)
    assert [input for _, input in recorder.ran] == [{"last": True}]


async def test_all_queues_entry_wakes_for_any_queue(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(all_queues=True))
    await jobs.start()
    await jobs.queue(task="record", queue="anything")
    await recorder.wait_for(1)


async def test_wakes_during_a_tick_fold_into_exactly_one_more_tick(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    ticks = 0
    release = anyio.Event()

    async def should(jobs: asyncjobs.Jobs) -> bool:
        nonlocal ticks
        ticks += 1
        if ticks == 2:  # the first tick (call 1 is start()) holds until released
            await release.wait()
        return True

    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(), should_auto_run=should)
    await jobs.start()
    await jobs.queue(task="record", input={"n": 0})
    await until(lambda: ticks == 2)
    for n in range(1, 4):
        await jobs.queue(task="record", input={"n": n})
    release.set()
    await recorder.wait_for(4)
    await until(lambda: ticks == 3)
    await jobs.queue(task="record", input={"n": 4})  # a fresh wake: the fourth tick
    await recorder.wait_for(5)
    assert ticks == 4


async def test_should_auto_run_false_on_a_tick_does_nothing(make_jobs: MakeJobs) -> None:
    answers = iter([True, False, True])  # start(), then the tick at start, then a wake
    asked = 0

    def should(jobs: asyncjobs.Jobs) -> bool:
        nonlocal asked
        asked += 1
        return next(answers)

    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(), should_auto_run=should)
    await jobs.queue(task="record", input={"n": 1})
    await jobs.start()
    await until(lambda: asked == 2)
    assert recorder.ran == []
    await jobs.queue(task="record", input={"n": 2})
    await recorder.wait_for(2)


async def test_a_tick_handles_schedules_then_runs(make_jobs: MakeJobs, clock: FakeClock) -> None:
    recorder = Recorder()
    scheduled = asyncjobs.Task(
        "tick",
        recorder.handle,
        schedule=asyncjobs.Schedule(
            "* * * * *", "default", before_schedule=lambda: {"wait_until": None}
        ),
    )
    jobs = make_jobs(tasks=[recorder.task, scheduled], auto_run=auto(EVERY_SECOND))
    await jobs.start()
    await recorder.wait_for(1)  # the first cron tick queued the scheduled job and ran it
    # A later tick (a second on) may have queued the next minute's job meanwhile: the hook
    # makes each tick's job runnable at once.
    assert {job.task_slug for job in await jobs.find()} == {"tick"}


async def test_ticks_woken_by_queued_jobs_leave_schedules_to_cron_times(
    make_jobs: MakeJobs,
) -> None:
    recorder = Recorder()
    scheduled = asyncjobs.Task(
        "tick", recorder.handle, schedule=asyncjobs.Schedule("* * * * *", "default")
    )
    jobs = make_jobs(tasks=[recorder.task, scheduled], auto_run=auto())
    handled = 0
    handle = jobs.handle_schedules

    async def counted(**options: Any) -> asyncjobs.ScheduleResult:
        nonlocal handled
        handled += 1
        return await handle(**options)

    jobs.handle_schedules = counted  # type: ignore[method-assign]
    await jobs.start()
    await until(lambda: handled == 1)  # the tick at start() is a full one
    for n in range(3):
        await jobs.queue(task="record", input={"n": n})
        await recorder.wait_for(n + 1)
    assert handled == 1
    assert len(await jobs.find(where={"task_slug": "tick"})) == 1
    fire(jobs)
    await until(lambda: handled == 2)


async def test_disable_scheduling_only_runs(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    scheduled = asyncjobs.Task(
        "tick", recorder.handle, schedule=asyncjobs.Schedule("* * * * *", "default")
    )
    jobs = make_jobs(
        tasks=[recorder.task, scheduled], auto_run=auto(disable_scheduling=True, limit=1)
    )
    await jobs.start()
    await jobs.queue(task="record")
    await recorder.wait_for(1)
    assert [job.task_slug for job in await jobs.find()] == ["record"]


async def test_a_failing_tick_is_logged_even_when_silent(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    calls = 0

    def should(jobs: asyncjobs.Jobs) -> bool:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("flaky check")
        return True

    recorder = Recorder()
    jobs = make_jobs(tasks=[recorder.task], auto_run=auto(silent=True), should_auto_run=should)
    await jobs.start()
    with caplog.at_level(logging.INFO):
        await jobs.queue(task="record")
        await until(lambda: calls == 2)
        await jobs.queue(task="record")
        await recorder.wait_for(2)
    (record,) = [r for r in caplog.records if r.name == "asyncjobs.autorun"]
    assert record.getMessage() == TICK_ERROR
    assert record.phase == "should_auto_run"  # type: ignore[attr-defined]
    assert "flaky check" in caplog.text
    assert not [r for r in caplog.records if r.name == "asyncjobs.runner"]  # silent=True


# -- stop() --------------------------------------------------------------------------------


async def test_stop_lets_a_running_job_finish_within_the_timeout(
    make_jobs: MakeJobs,
) -> None:
    started, finished = anyio.Event(), anyio.Event()

    async def slow() -> None:
        started.set()
        await anyio.sleep(0.3)
        finished.set()

    jobs = make_jobs(tasks=[asyncjobs.Task("slow", slow)], auto_run=auto())
    await jobs.start()
    job = await jobs.queue(task="slow")
    await started.wait()
    await jobs.stop(timeout=5)
    assert finished.is_set()
    assert (await jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]


async def test_stop_returns_promptly_and_leaves_no_job_leased(make_jobs: MakeJobs) -> None:
    started = anyio.Event()

    async def stuck() -> None:
        started.set()
        await anyio.sleep_forever()

    jobs = make_jobs(tasks=[asyncjobs.Task("stuck", stuck)], auto_run=auto())
    await jobs.start()
    job = await jobs.queue(task="stuck")
    await started.wait()
    began = time.monotonic()
    await jobs.stop(timeout=0.2)
    assert time.monotonic() - began < 2
    stored = await jobs.get(job.id)
    assert stored is not None and stored.processing_until is None
    assert (stored.status, stored.total_tried) == ("queued", 0)


async def test_stop_during_scheduling_starts_no_run(make_jobs: MakeJobs) -> None:
    in_hook, release = anyio.Event(), anyio.Event()

    async def before() -> dict[str, Any]:
        in_hook.set()
        await release.wait()
        return {"should_schedule": False}

    recorder = Recorder()
    scheduled = asyncjobs.Task(
        "tick", recorder.handle, schedule=asyncjobs.Schedule("* * * * *", before_schedule=before)
    )
    jobs = make_jobs(tasks=[recorder.task, scheduled], auto_run=auto(wake_on_queue=False))
    await jobs.start()
    job = await jobs.queue(task="record")
    fire(jobs)
    with anyio.fail_after(6):
        await in_hook.wait()
    async with anyio.create_task_group() as tg:
        tg.start_soon(jobs.stop)
        await anyio.lowlevel.checkpoint()  # stop() begins before the hook returns
        release.set()
    assert recorder.ran == []
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]


async def test_stop_cancels_a_tick_stuck_in_a_hook(make_jobs: MakeJobs) -> None:
    in_hook = anyio.Event()

    async def before() -> None:
        in_hook.set()
        await anyio.sleep_forever()

    scheduled = asyncjobs.Task(
        "tick", _noop, schedule=asyncjobs.Schedule("* * * * *", before_schedule=before)
    )
    jobs = make_jobs(tasks=[scheduled], auto_run=auto(all_queues=True))
    await jobs.start()
    fire(jobs)
    with anyio.fail_after(6):
        await in_hook.wait()
    began = time.monotonic()
    await jobs.stop(timeout=0.1)
    assert time.monotonic() - began < CLOSE_GRACE + 1


async def _noop() -> None:
    return None


# -- real time: the timers themselves ------------------------------------------------------


@sqlite_only
async def test_a_one_second_cron_processes_a_queued_job_within_about_two_seconds(
    make_jobs: MakeJobs,
) -> None:
    recorder = Recorder()
    jobs = make_jobs(
        tasks=[recorder.task],
        clock=utcnow,
        auto_run=auto(EVERY_SECOND, wake_on_queue=False),
    )
    await jobs.start()
    await jobs.queue(task="record")
    assert await recorder.wait_for(1, within=5) < 3


@sqlite_only
async def test_a_three_second_tick_never_overlaps_itself(make_jobs: MakeJobs) -> None:
    spans: list[tuple[float, float]] = []
    active = 0
    overlapped = False
    ticking = False

    async def should(jobs: asyncjobs.Jobs) -> bool:
        nonlocal active, overlapped
        if not ticking:
            return True  # the start() question
        active += 1
        overlapped = overlapped or active > 1
        began = time.monotonic()
        if not spans:
            await anyio.sleep(3)
        spans.append((began, time.monotonic()))
        active -= 1
        return False

    jobs = make_jobs(
        clock=utcnow, auto_run=auto(EVERY_SECOND, wake_on_queue=False), should_auto_run=should
    )
    await jobs.start()
    ticking = True
    await until(lambda: len(spans) >= 2, within=7)
    assert not overlapped
    (_, first_end), (second_start, _) = spans[:2]
    assert spans[0][1] - spans[0][0] >= 3
    assert second_start >= first_end


@sqlite_only
async def test_a_tick_that_raises_does_not_stop_the_next(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    ticks = 0

    async def should(jobs: asyncjobs.Jobs) -> bool:
        nonlocal ticks
        ticks += 1
        if ticks == 2:
            raise RuntimeError("first tick fails")
        return True

    recorder = Recorder()
    jobs = make_jobs(
        tasks=[recorder.task],
        clock=utcnow,
        auto_run=auto(EVERY_SECOND, wake_on_queue=False),
        should_auto_run=should,
    )
    await jobs.start()
    await jobs.queue(task="record")
    await recorder.wait_for(1, within=6)
    assert ticks >= 3
    assert TICK_ERROR in caplog.text


async def test_an_instance_told_not_to_auto_run_processes_nothing(make_jobs: MakeJobs) -> None:
    refused = 0

    def only_at_start(jobs: asyncjobs.Jobs) -> bool:
        nonlocal refused
        refused += 1
        return refused == 1  # timers are installed, then every tick is refused

    recorder = Recorder()
    idle = make_jobs(
        tasks=[recorder.task],
        clock=utcnow,
        auto_run=auto(EVERY_SECOND),
        should_auto_run=only_at_start,
    )
    busy = make_jobs(tasks=[recorder.task], clock=utcnow, auto_run=auto(EVERY_SECOND))
    await idle.start()
    await busy.start()
    await idle.queue_many([{"task": "record", "input": {"n": n}} for n in range(5)])
    await recorder.wait_for(5, within=6)
    await until(lambda: refused >= 3)  # the instant wake and at least one timer tick
    assert {id(jobs) for jobs, _ in recorder.ran} == {id(busy)}


@sqlite_only
async def test_timer_fires_log_nothing_below_warning(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    """APScheduler's executor logs each run at INFO; a timer every second must not flood."""
    jobs = make_jobs(tasks=[Recorder().task], auto_run=auto(EVERY_SECOND))
    handled = 0
    handle = jobs.handle_schedules

    async def counted(**options: Any) -> asyncjobs.ScheduleResult:
        nonlocal handled
        handled += 1
        return await handle(**options)

    jobs.handle_schedules = counted  # type: ignore[method-assign]
    with caplog.at_level(logging.INFO):
        await jobs.start()
        await until(lambda: handled >= 2, within=5)  # the tick at start(), then a timer's
    assert not [r for r in caplog.records if r.name.startswith("apscheduler.executors")]
