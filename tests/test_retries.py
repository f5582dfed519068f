"""Retry caps and backoff, timed with the injected clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

import asyncjobs
from asyncjobs.retry import (
    MAX_BACKOFF,
    Backoff,
    Decision,
    Retries,
    StepTries,
    backoff_until,
    decide,
    task_max_retries,
    workflow_verdict,
)
from tests.conftest import T0, FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
runs: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    runs.clear()


def failing(slug: str, **options: Any) -> asyncjobs.Task:
    async def handler(*, input: dict) -> None:
        runs.append(slug)
        raise RuntimeError(f"{slug} failed")

    return asyncjobs.Task(slug, handler, **options)


async def drain(jobs: asyncjobs.Jobs, clock: FakeClock, *, step: float = 3600) -> list[str]:
    """Run, moving the clock past any backoff, until nothing is runnable."""
    statuses = []
    for _ in range(30):
        result = await jobs.run()
        if result.no_jobs_remaining:
            clock.advance(step)
            result = await jobs.run()
            if result.no_jobs_remaining:
                return statuses
        statuses.extend(result.job_status.values())
    raise AssertionError("did not settle")


async def test_task_retries_allow_n_plus_one_runs(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[failing("t", retries=2)])
    job = await jobs.queue(task="t")
    assert await drain(jobs, clock) == ["error", "error", "error-reached-max-retries"]
    done = await jobs.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried, len(done.log)) == ("failed", 3, 3)
    assert done.error is not None
    assert done.error["message"] == "t failed"


async def test_retryable_task_error_leaves_job_error_unset(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[failing("t", retries=1)])
    job = await jobs.queue(task="t")
    await jobs.run()
    retrying = await jobs.get(job.id)
    assert retrying is not None
    assert (retrying.status, retrying.error, retrying.has_error) == ("queued", None, False)


async def test_workflow_retries_cap_job_attempts(make_jobs: MakeJobs, clock: FakeClock) -> None:
    @asyncjobs.workflow("wf", retries=1)
    async def wf(*, tasks: Any) -> None:
        await tasks.t("1")

    jobs = make_jobs(tasks=[failing("t", retries=10)], workflows=[wf])
    await jobs.queue(workflow="wf")
    assert await drain(jobs, clock) == ["error", "error-reached-max-retries"]


async def test_workflow_retries_zero_makes_first_failure_final(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=0)
    async def wf(*, tasks: Any) -> None:
        await tasks.t("1")

    jobs = make_jobs(tasks=[failing("t", retries=5)], workflows=[wf])
    await jobs.queue(workflow="wf")
    assert await drain(jobs, clock) == ["error-reached-max-retries"]


async def test_task_retries_zero_is_final_despite_workflow_retries(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=5)
    async def wf(*, tasks: Any) -> None:
        await tasks.t("1")

    jobs = make_jobs(tasks=[failing("t", retries=0)], workflows=[wf])
    await jobs.queue(workflow="wf")
    assert await drain(jobs, clock) == ["error-reached-max-retries"]


async def test_task_without_retries_inherits_workflow_attempts_not_backoff(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=asyncjobs.Retries(attempts=2))
    async def wf(*, tasks: Any) -> None:
        await tasks.t("1")

    jobs = make_jobs(tasks=[failing("t")], workflows=[wf])
    job = await jobs.queue(workflow="wf")
    await jobs.run()
    after_first = await jobs.get(job.id)
    assert after_first is not None
    assert after_first.wait_until == clock.now  # no backoff: runnable on the next call
    assert await drain(jobs, clock) == ["error", "error-reached-max-retries"]


async def test_single_task_job_without_retries_fails_at_once(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[failing("t")])
    await jobs.queue(task="t")
    assert await drain(jobs, clock) == ["error-reached-max-retries"]


async def test_fixed_backoff_waits_the_delay(make_jobs: MakeJobs, clock: FakeClock) -> None:
    retries = asyncjobs.Retries(attempts=2, backoff=asyncjobs.Backoff(type="fixed", delay=30))
    jobs = make_jobs(tasks=[failing("t", retries=retries)])
    job = await jobs.queue(task="t")
    await jobs.run()
    waiting = await jobs.get(job.id)
    assert waiting is not None
    assert waiting.status == "waiting"
    assert waiting.wait_until == clock.now + timedelta(seconds=30)
    clock.advance(29.999)
    assert (await jobs.run()).no_jobs_remaining
    clock.advance(0.001)
    assert (await jobs.run()).job_status == {job.id: "error"}


async def test_exponential_backoff_doubles(make_jobs: MakeJobs, clock: FakeClock) -> None:
    retries = asyncjobs.Retries(attempts=4, backoff=asyncjobs.Backoff(type="exponential", delay=1))
    jobs = make_jobs(tasks=[failing("t", retries=retries)])
    job = await jobs.queue(task="t")
    waits = []
    for _ in range(4):
        await jobs.run()
        current = await jobs.get(job.id)
        assert current is not None and current.wait_until is not None
        waits.append((current.wait_until - clock.now).total_seconds())
        clock.now = current.wait_until
    assert waits == [1, 2, 4, 8]
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}


async def test_workflow_handler_error_without_retries_is_final(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf")
    async def wf() -> None:
        raise KeyError("missing")

    jobs = make_jobs(workflows=[wf])
    job = await jobs.queue(workflow="wf")
    assert await drain(jobs, clock) == ["error-reached-max-retries"]
    done = await jobs.get(job.id)
    assert done is not None
    assert done.error is not None
    assert (done.error["name"], done.log) == ("KeyError", [])


async def test_workflow_handler_error_retries_with_workflow_backoff(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=Retries(attempts=2, backoff=Backoff(delay=10)))
    async def wf() -> None:
        runs.append("wf")
        raise RuntimeError("handler broke")

    jobs = make_jobs(workflows=[wf])
    job = await jobs.queue(workflow="wf")
    await jobs.run()
    retrying = await jobs.get(job.id)
    assert retrying is not None
    assert (retrying.has_error, retrying.status) == (False, "waiting")
    assert retrying.error is not None  # workflow errors are recorded even when retryable
    assert retrying.wait_until == clock.now + timedelta(seconds=10)
    assert await drain(jobs, clock) == ["error", "error-reached-max-retries"]
    assert runs == ["wf"] * 3


async def test_workflow_retries_without_attempts_never_retry_forever(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=Retries(backoff=Backoff(delay=1)))
    async def wf() -> None:
        raise RuntimeError("handler broke")

    jobs = make_jobs(workflows=[wf])
    await jobs.queue(workflow="wf")
    assert await drain(jobs, clock) == ["error-reached-max-retries"]


async def test_rerun_completed_step_can_still_run_out_of_retries(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    attempts = {"n": 0}

    @asyncjobs.task("once-then-fail", retries=Retries(attempts=1, should_restore=False))
    async def once_then_fail() -> None:
        attempts["n"] += 1
        if attempts["n"] > 1:
            raise RuntimeError("fails after first success")

    @asyncjobs.workflow("wf", retries=5)
    async def wf(*, tasks: Any) -> None:
        await tasks["once-then-fail"]("1")
        raise RuntimeError("force a retry of the job")

    jobs = make_jobs(tasks=[once_then_fail], workflows=[wf])
    await jobs.queue(workflow="wf")
    # handler error, then the re-run step fails twice: its one retry is used up
    assert await drain(jobs, clock) == ["error", "error", "error-reached-max-retries"]


async def test_workflow_retries_without_attempts_leave_task_retries_in_force(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    @asyncjobs.workflow("wf", retries=Retries(backoff=Backoff(delay=60)))
    async def wf(*, tasks: Any) -> None:
        await tasks.t("1")

    jobs = make_jobs(tasks=[failing("t", retries=2)], workflows=[wf])
    job = await jobs.queue(workflow="wf")
    await jobs.run()
    retrying = await jobs.get(job.id)
    assert retrying is not None
    assert retrying.wait_until == clock.now + timedelta(seconds=60)  # the workflow's backoff
    assert await drain(jobs, clock) == ["error", "error-reached-max-retries"]
    assert runs == ["t"] * 3


async def test_a_numeric_call_site_override_keeps_the_tasks_backoff_and_restore(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    calls = {"n": 0}
    retries = Retries(attempts=0, backoff=Backoff(delay=30), should_restore=False)

    @asyncjobs.task("flaky", retries=retries)
    async def flaky() -> None:
        calls["n"] += 1
        if calls["n"] in (2, 3):  # succeeds, then fails twice when re-run
            raise RuntimeError("flaky")

    @asyncjobs.workflow("wf", retries=5)
    async def wf(*, tasks: Any) -> None:
        await tasks.flaky("1", retries=2)
        if calls["n"] == 1:
            raise RuntimeError("retry the job once")

    jobs = make_jobs(tasks=[flaky], workflows=[wf])
    job = await jobs.queue(workflow="wf")
    await jobs.run()  # the step succeeds; the handler fails after it
    await jobs.run()  # should_restore=False re-runs the step, which fails
    retrying = await jobs.get(job.id)
    assert retrying is not None
    assert retrying.wait_until == clock.now + timedelta(seconds=30)  # the task's backoff
    assert await drain(jobs, clock) == ["error", "success"]
    assert calls["n"] == 4  # attempts=2 from the call site: two failures were retried


async def test_a_backoff_too_long_to_represent_is_capped_not_a_crash(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    # 10**12 s is 31,700 years: past the last representable date
    retries = Retries(attempts=2, backoff=Backoff(delay=10**12))
    jobs = make_jobs(tasks=[failing("t", retries=retries)])
    job = await jobs.queue(task="t")
    assert (await jobs.run()).job_status == {job.id: "error"}
    waiting = await jobs.get(job.id)
    assert waiting is not None
    assert (waiting.status, waiting.total_tried) == ("waiting", 1)
    assert waiting.wait_until == clock.now + MAX_BACKOFF


def test_exponential_backoff_is_capped() -> None:
    exp = Retries(attempts=5000, backoff=Backoff(type="exponential", delay=1))
    assert backoff_until(exp, 4000, T0) == T0 + MAX_BACKOFF


@pytest.mark.parametrize("delay", [float("nan"), float("inf")])
def test_a_backoff_delay_must_be_finite(delay: float) -> None:
    with pytest.raises(ValueError, match="delay"):
        Backoff(delay=delay)


def test_backoff_math_is_pure() -> None:
    exp = Retries(attempts=4, backoff=Backoff(type="exponential", delay=0.3))
    assert backoff_until(exp, 3, T0) == T0 + timedelta(seconds=2.4)
    assert backoff_until(Retries(attempts=1), 3, T0) == T0
    assert backoff_until(None, 0, T0) == T0
    assert task_max_retries(None, Retries(attempts=3)) == 3
    assert task_max_retries(Retries(attempts=1), Retries(attempts=3)) == 1
    assert task_max_retries(None, None) == 0
    assert workflow_verdict(None, 10, T0).final is False
    assert workflow_verdict(Retries(attempts=2), 2, T0).final is True


def _tries(attempts: int | None, delay: float = 0, since_success: int = 0) -> StepTries:
    backoff = Backoff(delay=delay) if delay else None
    return StepTries(Retries(attempts=attempts, backoff=backoff), 0, since_success)


def test_decide_a_handler_failure_counts_only_the_workflow_retries() -> None:
    pending, hour = T0 + timedelta(minutes=5), timedelta(hours=1)
    no_retries = decide(job=None, tried=0, pending=pending, now=T0)
    assert no_retries == Decision(final=True, wait_until=None)  # a pending wait is cleared
    flow = Retries(attempts=1, backoff=Backoff(delay=hour.total_seconds()))
    assert decide(job=flow, tried=0, pending=pending, now=T0) == Decision(False, T0 + hour)
    assert decide(job=flow, tried=1, pending=pending, now=T0) == Decision(True, None)
    assert decide(job=Retries(), tried=0, pending=None, now=T0) == Decision(True, None)


def test_decide_a_step_failure_waits_for_the_latest_and_keeps_it_when_final() -> None:
    pending, past = T0 + timedelta(minutes=5), T0 - timedelta(minutes=5)
    minute = Retries(attempts=3, backoff=Backoff(delay=60))
    step = _tries(2, delay=600)
    assert decide(job=minute, tried=0, pending=pending, now=T0, step=step) == Decision(
        False, T0 + timedelta(minutes=10)
    )
    used_up = _tries(2, since_success=2)
    assert decide(job=None, tried=5, pending=pending, now=T0, step=used_up) == Decision(
        True, pending
    )
    assert decide(job=None, tried=5, pending=past, now=T0, step=used_up) == Decision(True, None)
    # The step could retry, the workflow cannot: final, with the step's backoff kept.
    flow_cap = Retries(attempts=1)
    assert decide(job=flow_cap, tried=1, pending=None, now=T0, step=step) == Decision(
        True, T0 + timedelta(minutes=10)
    )
    # Retries without attempts on the workflow cap nothing after a step: the step's cap does.
    uncapped = decide(job=Retries(), tried=9, pending=None, now=T0, step=_tries(None))
    assert uncapped == Decision(True, None)
