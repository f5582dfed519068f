"""handle_schedules(): proposed ticks, hooks, and one job per tick across instances."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import asyncjobs
from tests.conftest import T0, FakeClock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]
EVERY_5_MIN = "*/5 * * * *"


class ReportIn(BaseModel):
    day: str


async def _noop(**_: Any) -> None:
    return None


def scheduled_task(
    slug: str = "report", cron: str = EVERY_5_MIN, queue: str = "default", **hooks: Any
) -> asyncjobs.Task:
    return asyncjobs.Task(slug, _noop, schedule=asyncjobs.Schedule(cron, queue, **hooks))


async def _jobs_of(jobs: asyncjobs.Jobs, slug: str = "report") -> list[asyncjobs.Job]:
    return await jobs.find(where={"task_slug": slug}, order="created_at")


async def test_without_schedules_nothing_is_proposed(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[asyncjobs.Task("plain", _noop)])
    assert await jobs.handle_schedules(all_queues=True) == asyncjobs.ScheduleResult()


async def test_first_call_enqueues_the_next_tick(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[scheduled_task()])
    clock.advance(61)
    result = await jobs.handle_schedules()
    assert result == asyncjobs.ScheduleResult(queued=[("report", "default")])
    (job,) = await _jobs_of(jobs)
    assert job.wait_until == T0 + timedelta(minutes=5)
    assert job.meta == {"scheduled": True}
    assert (job.status, job.queue, job.input) == ("waiting", "default", {})


async def test_workflow_schedules_enqueue_workflow_jobs(make_jobs: MakeJobs) -> None:
    flow = asyncjobs.Workflow("nightly", _noop, schedule=[asyncjobs.Schedule("0 3 * * *", "ops")])
    jobs = make_jobs(workflows=[flow])
    assert (await jobs.handle_schedules(queue="ops")).queued == [("nightly", "ops")]
    (job,) = await jobs.find(where={"workflow_slug": "nightly"})
    assert (job.queue, job.wait_until) == ("ops", T0.replace(hour=3) + timedelta(days=1))


async def test_default_hook_skips_while_the_scheduled_job_is_unfinished(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[scheduled_task()])
    await jobs.handle_schedules()
    assert (await jobs.handle_schedules()).skipped == [("report", "default")]
    clock.advance(minutes=5)
    await run_until_idle(jobs)
    assert (await jobs.handle_schedules()).queued == [("report", "default")]
    ticks = [job.wait_until for job in await _jobs_of(jobs)]
    assert ticks == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]


async def test_a_job_retrying_after_a_workflow_error_still_holds_the_next_tick(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    async def flaky() -> None:
        raise RuntimeError("down")

    flow = asyncjobs.Workflow(
        "sync", flaky, retries=5, schedule=asyncjobs.Schedule("* * * * *", "default")
    )
    jobs = make_jobs(workflows=[flow])
    await jobs.handle_schedules()
    clock.advance(minutes=1)
    (status,) = (await jobs.run()).job_status.values()
    (job,) = await jobs.find(where={"workflow_slug": "sync"})
    assert status == "error" and job.error is not None and not job.has_error
    clock.advance(minutes=1)
    assert (await jobs.handle_schedules()).skipped == [("sync", "default")]


async def test_cancelled_and_manual_jobs_do_not_hold_the_next_tick(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[scheduled_task()])
    await jobs.handle_schedules()
    await jobs.cancel(queue="default")
    await jobs.queue(task="report")
    assert (await jobs.handle_schedules()).queued == [("report", "default")]


async def test_downtime_yields_one_catch_up_job(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[scheduled_task()])
    await jobs.handle_schedules()
    clock.advance(minutes=5)
    await run_until_idle(jobs)
    clock.advance(hours=3, seconds=30)
    assert (await jobs.handle_schedules()).queued == [("report", "default")]
    catch_up = (await _jobs_of(jobs))[-1]
    assert catch_up.wait_until == T0 + timedelta(hours=3, minutes=5)
    assert catch_up.status == "queued"
    assert (await jobs.handle_schedules()).skipped == [("report", "default")]
    assert len(await _jobs_of(jobs)) == 2


async def test_schedule_state_is_shared_through_the_database(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    always = {"before_schedule": lambda: {"should_schedule": True}}
    first = make_jobs(tasks=[scheduled_task(**always)])
    second = make_jobs(tasks=[scheduled_task(**always)])
    await first.handle_schedules()
    await second.handle_schedules()
    ticks = [job.wait_until for job in await _jobs_of(first)]
    assert ticks == [T0 + timedelta(minutes=5), T0 + timedelta(minutes=10)]


@pytest.mark.parametrize("use_default_hook", [True, False])
async def test_eight_instances_racing_for_one_tick_enqueue_one_job(
    make_jobs: MakeJobs, use_default_hook: bool
) -> None:
    racers = 8
    arrived = 0
    all_arrived = anyio.Event()
    outcomes: list[str] = []

    async def rendezvous(**_: Any) -> dict[str, Any]:
        # Every instance decides before any of them claims: the database alone must arbitrate.
        nonlocal arrived
        arrived += 1
        if arrived == racers:
            all_arrived.set()
        await all_arrived.wait()
        return {"should_schedule": True}

    hooks: dict[str, Any] = {"after_schedule": lambda *, status: outcomes.append(status)}
    if not use_default_hook:
        hooks["before_schedule"] = rendezvous
    instances = [make_jobs(tasks=[scheduled_task(**hooks)]) for _ in range(racers)]
    for jobs in instances:
        await jobs.start(auto_run=False)
    results: list[asyncjobs.ScheduleResult] = []

    async def call(jobs: asyncjobs.Jobs) -> None:
        results.append(await jobs.handle_schedules())

    async with anyio.create_task_group() as tg:
        for jobs in instances:
            tg.start_soon(call, jobs)
    assert len(await _jobs_of(instances[0])) == 1
    assert sum(len(r.queued) for r in results) == 1
    assert sum(len(r.skipped) for r in results) == racers - 1
    assert sorted(outcomes) == ["skipped"] * (racers - 1) + ["success"]


async def test_a_superseding_schedule_replaces_its_pending_job(make_jobs: MakeJobs) -> None:
    task = asyncjobs.Task(
        "report",
        _noop,
        concurrency=asyncjobs.Concurrency(lambda: "report", supersedes=True),
        schedule=asyncjobs.Schedule(
            EVERY_5_MIN, "default", before_schedule=lambda: {"should_schedule": True}
        ),
    )
    jobs = make_jobs(tasks=[task])
    await jobs.handle_schedules()
    await jobs.handle_schedules()
    (job,) = await _jobs_of(jobs)
    assert job.wait_until == T0 + timedelta(minutes=10)


async def test_queue_selects_schedules_and_all_queues_takes_every_one(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(
        tasks=[scheduled_task("a", queue="default"), scheduled_task("b", queue="reports")]
    )
    assert (await jobs.handle_schedules(queue="reports")).queued == [("b", "reports")]
    result = await jobs.handle_schedules(all_queues=True)
    assert (result.queued, result.skipped) == ([("a", "default")], [("b", "reports")])


async def test_custom_hook_sets_input_and_wait_until(make_jobs: MakeJobs, clock: FakeClock) -> None:
    seen: dict[str, Any] = {}

    def before(*, slug: str, queue: str, schedule: asyncjobs.Schedule, wait_until: Any) -> Any:
        seen.update(slug=slug, queue=queue, cron=schedule.cron, wait_until=wait_until)
        return {"input": {"day": "monday"}, "wait_until": None}

    task = asyncjobs.Task(
        "report",
        _noop,
        input_schema=ReportIn,
        schedule=asyncjobs.Schedule(EVERY_5_MIN, "default", before_schedule=before),
    )
    jobs = make_jobs(tasks=[task])
    await jobs.handle_schedules()
    (job,) = await _jobs_of(jobs)
    assert (job.input, job.wait_until, job.status) == ({"day": "monday"}, None, "queued")
    tick = T0 + timedelta(minutes=5)
    assert seen == {"slug": "report", "queue": "default", "cron": EVERY_5_MIN, "wait_until": tick}


async def test_custom_hook_without_wait_until_keeps_the_tick(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[scheduled_task(before_schedule=lambda: {"input": {"n": 1}})])
    await jobs.handle_schedules()
    (job,) = await _jobs_of(jobs)
    assert (job.input, job.wait_until) == ({"n": 1}, T0 + timedelta(minutes=5))


async def test_custom_hook_can_await_the_default(make_jobs: MakeJobs) -> None:
    async def before(**kwargs: Any) -> dict[str, Any]:
        decision = await kwargs["default"](**kwargs)
        return {**decision, "input": {"via": "default"}}

    jobs = make_jobs(tasks=[scheduled_task(before_schedule=before)])
    assert (await jobs.handle_schedules()).queued == [("report", "default")]
    assert (await jobs.handle_schedules()).skipped == [("report", "default")]
    assert [job.input for job in await _jobs_of(jobs)] == [{"via": "default"}]


async def test_should_schedule_false_is_skipped_and_reported_to_after_schedule(
    make_jobs: MakeJobs,
) -> None:
    calls: list[dict[str, Any]] = []

    def after(**kwargs: Any) -> None:
        calls.append(kwargs)

    jobs = make_jobs(
        tasks=[
            scheduled_task(before_schedule=lambda: {"should_schedule": False}, after_schedule=after)
        ]
    )
    assert (await jobs.handle_schedules()).skipped == [("report", "default")]
    assert await _jobs_of(jobs) == []
    (call,) = calls
    assert (call["status"], call["job"], call["error"]) == ("skipped", None, None)
    assert (call["slug"], call["queue"], call["jobs"]) == ("report", "default", jobs)
    assert call["schedule"].cron == EVERY_5_MIN


async def test_after_schedule_receives_the_job_on_success(make_jobs: MakeJobs) -> None:
    calls: list[tuple[str, Any]] = []

    async def after(*, status: str, job: asyncjobs.Job | None) -> None:
        calls.append((status, job))

    jobs = make_jobs(tasks=[scheduled_task(after_schedule=after)])
    await jobs.handle_schedules()
    (stored,) = await _jobs_of(jobs)
    assert calls == [("success", stored)]


async def test_invalid_input_is_errored_and_stores_nothing(make_jobs: MakeJobs) -> None:
    errors: list[BaseException] = []
    task = asyncjobs.Task(
        "report",
        _noop,
        input_schema=ReportIn,
        schedule=asyncjobs.Schedule(
            EVERY_5_MIN, "default", after_schedule=lambda *, error: errors.append(error)
        ),
    )
    jobs = make_jobs(tasks=[task])
    assert (await jobs.handle_schedules()).errored == [("report", "default")]
    assert await _jobs_of(jobs) == []
    (error,) = errors
    assert isinstance(error, asyncjobs.ValidationError) and "day" in str(error)


@pytest.mark.parametrize(
    ("returned", "message"),
    [("yes", "must return a dict"), ({"shuld_schedule": True}, "unknown key(s) shuld_schedule")],
)
async def test_malformed_hook_results_are_errors(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture, returned: Any, message: str
) -> None:
    jobs = make_jobs(tasks=[scheduled_task(before_schedule=lambda: returned)])
    with caplog.at_level(logging.ERROR, logger="asyncjobs.schedules"):
        assert (await jobs.handle_schedules()).errored == [("report", "default")]
    assert message in caplog.text
    assert await _jobs_of(jobs) == []


async def test_hook_returning_none_schedules_with_defaults(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[scheduled_task(before_schedule=lambda: None)])
    assert (await jobs.handle_schedules()).queued == [("report", "default")]


async def test_failing_after_schedule_is_logged_and_keeps_the_outcome(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    def after() -> None:
        raise RuntimeError("hook broke")

    jobs = make_jobs(tasks=[scheduled_task(after_schedule=after)])
    with caplog.at_level(logging.ERROR, logger="asyncjobs.schedules"):
        assert (await jobs.handle_schedules()).queued == [("report", "default")]
    assert "after_schedule of task 'report' raised" in caplog.text
    assert "hook broke" in caplog.text


async def test_scheduled_jobs_do_not_wake_queue_listeners(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[scheduled_task(before_schedule=lambda: {"wait_until": None})])
    heard: list[tuple[str, object]] = []
    jobs.wake.subscribe(lambda queue, due: heard.append((queue, due)))
    assert (await jobs.handle_schedules()).queued == [("report", "default")]
    assert heard == []


async def test_scheduling_logs_honour_silent(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    from asyncjobs import logs

    jobs = make_jobs(tasks=[scheduled_task("a"), scheduled_task("b")])
    with caplog.at_level(logging.INFO, logger="asyncjobs.schedules"):
        with logs.silenced({"info": True}):
            await jobs.handle_schedules()
        assert [r for r in caplog.records if r.name == "asyncjobs.schedules"] == []
        jobs2 = make_jobs(tasks=[scheduled_task("c")])
        await jobs2.handle_schedules()
    (record,) = [r for r in caplog.records if r.name == "asyncjobs.schedules"]
    assert record.getMessage().startswith("Scheduled job")
    assert (record.slug, record.queue) == ("c", "default")  # type: ignore[attr-defined]


async def _await_default(**kwargs: Any) -> Any:
    return await kwargs["default"](**kwargs)


@pytest.mark.parametrize("before_schedule", [None, _await_default])
async def test_instances_straddling_a_tick_enqueue_one_job_under_the_default_hook(
    make_jobs: MakeJobs, before_schedule: Any
) -> None:
    # Both instances decide (nothing unfinished) before either enqueues; then the one
    # proposing 12:01 enqueues, then the one proposing 12:02 (its clock a minute on).
    second_decided, first_done = anyio.Event(), anyio.Event()

    async def first_key() -> None:
        await second_decided.wait()

    async def second_key() -> None:
        second_decided.set()
        await first_done.wait()

    def report(key: Any, **hooks: Any) -> asyncjobs.Task:
        schedule = asyncjobs.Schedule("* * * * *", before_schedule=before_schedule, **hooks)
        concurrency = asyncjobs.Concurrency(key, exclusive=False)  # called before the insert
        return asyncjobs.Task("report", _noop, concurrency=concurrency, schedule=schedule)

    first = make_jobs(
        tasks=[report(first_key, after_schedule=first_done.set)],
        clock=FakeClock(T0 + timedelta(seconds=30)),
    )
    second = make_jobs(tasks=[report(second_key)], clock=FakeClock(T0 + timedelta(seconds=90)))
    results: dict[str, asyncjobs.ScheduleResult] = {}

    async def call(name: str, jobs: asyncjobs.Jobs) -> None:
        await jobs.start(auto_run=False)
        results[name] = await jobs.handle_schedules()

    async with anyio.create_task_group() as tg:
        tg.start_soon(call, "first", first)
        tg.start_soon(call, "second", second)
    (job,) = await _jobs_of(first)
    assert job.wait_until == T0 + timedelta(minutes=1)
    assert results["first"].queued == results["second"].skipped == [("report", "default")]
