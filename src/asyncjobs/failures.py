"""What a failed attempt writes: task errors, workflow errors, cancellation (reference §8, §11)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from asyncjobs import injection, logs, telemetry
from asyncjobs.attempt import (
    Attempt,
    error_json,
    new_log_entry,
    released,
    storable,
    unstorable,
)
from asyncjobs.errors import JobCancelled, JobRunAborted, StorageError, WriteRefused
from asyncjobs.finisher import unrecorded
from asyncjobs.models import RunStatus
from asyncjobs.retry import backoff_until, task_max_retries, workflow_verdict
from asyncjobs.step_runner import Step, StepRunner, TaskFailed, stray
from asyncjobs.storage import cancelled_values

FINAL: RunStatus = "error-reached-max-retries"


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)


def _future_wait(attempt: Attempt, now: datetime) -> datetime | None:
    wait: datetime | None = attempt.row.get("wait_until")
    return wait if wait is not None and wait > now else None


async def task_failed(attempt: Attempt, steps: StepRunner, failure: TaskFailed) -> RunStatus:
    """A step failed and escaped the handler: retry the job or fail it for good."""
    step = failure.step
    if step.task is not None and step.task.on_fail is not None:
        cancelled_by_hook = await _on_fail(attempt, steps, failure)
        if cancelled_by_hook is not None:
            return cancelled_by_hook
    now = attempt.clock()
    error = error_json(failure.cause)
    entry = new_log_entry(
        slug=step.slug,
        task_id=step.task_id,
        executed_at=step.executed_at,
        completed_at=now,
        input=step.input if step.input is not None else {},
        output={},
        error=error,
        parent=step.parent,
    )
    workflow_retries = attempt.definition.retries if attempt.definition else None
    cap = task_max_retries(step.retries, workflow_retries)
    wait = _future_wait(attempt, now)
    values: dict[str, Any] = {**released(), "total_tried": attempt.row["total_tried"] + 1}
    if attempt.failures_since_success(step.slug, step.task_id) >= cap:
        final = True
    else:
        prior = failure.status.total_tried if failure.status else 0
        wait = _later(wait, backoff_until(step.retries, prior, now))
        verdict = workflow_verdict(workflow_retries, attempt.row["total_tried"], now, step=True)
        wait = _later(wait, verdict.wait_until)
        final = verdict.final
    values.update(wait_until=wait, has_error=final)
    if final:
        values["error"] = error
    await attempt.write(values, log_entry=entry)
    _log_failure(attempt, f"task {step.slug!r} ({step.task_id})", final, error)
    return FINAL if final else "error"


async def _on_fail(attempt: Attempt, steps: StepRunner, failure: TaskFailed) -> RunStatus | None:
    """Call the task's ``on_fail``; a status only when it cancelled the job."""
    step = failure.step
    assert step.task is not None and step.task.on_fail is not None
    try:
        await injection.call(step.task.on_fail, steps.hook_args(step, failure.status))
    except JobCancelled as exc:  # cancels the job, like anywhere else
        return await cancelled(attempt, str(exc) or "cancelled by on_fail")
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError) and not await stray(exc):
            raise
        logs.error("on_fail of task %r raised", step.slug, extra=_extra(attempt), exc=True)
    return None


async def workflow_failed(attempt: Attempt, exc: BaseException) -> RunStatus:
    """The handler itself raised (not a step): only the workflow's retries count."""
    now = attempt.clock()
    retries = attempt.definition.retries if attempt.definition else None
    wait = _future_wait(attempt, now)
    if retries is None:
        final = True
    else:
        verdict = workflow_verdict(retries, attempt.row["total_tried"], now)
        final, wait = verdict.final, _later(wait, verdict.wait_until)
    error = error_json(exc)
    await attempt.write(
        {
            **released(),
            "error": error,
            "has_error": final,
            "total_tried": attempt.row["total_tried"] + 1,
            "wait_until": None if final else wait,
        }
    )
    _log_failure(attempt, "handler", final, error)
    return FINAL if final else "error"


async def failed_for_good(attempt: Attempt, exc: BaseException) -> RunStatus:
    """Nothing to retry: an unregistered slug or a handler that cannot be imported."""
    error = error_json(exc)
    error.pop("traceback", None)
    await attempt.write(
        {
            **released(),
            "error": error,
            "has_error": True,
            "total_tried": attempt.row["total_tried"] + 1,
        }
    )
    _log_failure(attempt, "job", True, error)
    return FINAL


async def cancelled(attempt: Attempt, message: str) -> RunStatus:
    """A handler raised ``JobCancelled``: no retry, no log entry, no try counted."""
    await attempt.write(cancelled_values(attempt.clock(), storable(message)))
    return FINAL


async def outcome_refused(attempt: Attempt, steps: StepRunner, exc: Exception) -> RunStatus | None:
    """The job's outcome could not be written for a reason of its own (say, a step output
    that cannot be encoded): the attempt fails like with any error, a try counted.

    A single-task job's deferred step fails under its task's retries; otherwise, or when even
    that cannot be written, the failure is written without a log entry; and when not even
    that can be, the job is left to its lease.
    """
    step: Step | None = attempt.deferred_step
    attempt.pending.clear()  # what could not be written
    try:
        if step is not None:
            status = attempt.task_status(step.slug, step.task_id)
            failure = TaskFailed(step, status, unstorable(step.output_name, exc))
            try:
                return await task_failed(attempt, steps, failure)
            except WriteRefused as refused:
                exc = refused
        return await workflow_failed(attempt, unstorable(f"the outcome of job {attempt.id}", exc))
    except (JobRunAborted, StorageError, WriteRefused):
        unrecorded(attempt)
        return None


def _extra(attempt: Attempt) -> dict[str, Any]:
    return logs.job_fields(attempt.row)


def _log_failure(attempt: Attempt, what: str, final: bool, error: dict[str, Any]) -> None:
    telemetry.failed(attempt, error)
    outcome = "max retries reached" if final else "will retry"
    logs.error(
        "Error running %s of job %s, attempt %s: %s: %s (%s)",
        what,
        attempt.id,
        attempt.row["total_tried"],
        error.get("name"),
        error.get("message"),
        outcome,
        extra={**_extra(attempt), "final": final, "error_name": error.get("name")},
    )
