"""What a failed attempt writes: a step's failure, the handler's, one that cannot be retried, a
cancellation. ``retry.decide`` says whether and when to try again; each writes once."""

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
from asyncjobs.retry import Decision, StepTries, decide
from asyncjobs.step_runner import Step, StepRunner, TaskFailed, stray
from asyncjobs.storage import cancelled_values

FINAL: RunStatus = "error-reached-max-retries"


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
    tries = StepTries(
        retries=step.retries,
        prior=failure.status.total_tried if failure.status else 0,
        since_success=attempt.failures_since_success(step.slug, step.task_id),
    )
    decision = _decide(attempt, now, tries)
    values = failure_values(attempt, error if decision.final else None, decision)
    await attempt.write(values, log_entry=entry)
    _log_failure(attempt, f"task {step.slug!r} ({step.task_id})", decision.final, error)
    return FINAL if decision.final else "error"


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
    decision = _decide(attempt, attempt.clock())
    error = error_json(exc)
    await attempt.write(failure_values(attempt, error, decision))
    _log_failure(attempt, "handler", decision.final, error)
    return FINAL if decision.final else "error"


async def failed_for_good(attempt: Attempt, exc: BaseException) -> RunStatus:
    """Nothing to retry: an unregistered slug or a handler that cannot be imported."""
    error = error_json(exc)
    error.pop("traceback", None)
    await attempt.write(failure_values(attempt, error))
    _log_failure(attempt, "job", True, error)
    return FINAL


def _decide(attempt: Attempt, now: datetime, step: StepTries | None = None) -> Decision:
    row = attempt.row
    return decide(
        job=attempt.retries, tried=row.total_tried, pending=row.wait_until, now=now, step=step
    )


def failure_values(
    attempt: Attempt, error: dict[str, Any] | None, decision: Decision | None = None
) -> dict[str, Any]:
    """The columns a failed try writes: the lease released, the try counted, ``error`` unless
    ``None``; without a ``decision`` the job fails for good and its ``wait_until`` stays."""
    values: dict[str, Any] = {
        **released(),
        "total_tried": attempt.row.total_tried + 1,
        "has_error": decision is None or decision.final,
    }
    if error is not None:
        values["error"] = error
    if decision is not None:
        values["wait_until"] = decision.wait_until
    return values


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
        attempt.row.total_tried,
        error.get("name"),
        error.get("message"),
        outcome,
        extra={**_extra(attempt), "final": final, "error_name": error.get("name")},
    )
