"""Retry caps and backoff math (pure; reference §8)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from asyncjobs.config import Retries, seconds
from asyncjobs.models import TaskStatus

# The longest wait a backoff sets: exponential growth soon passes the last date a datetime
# can hold, and a retry that cannot be scheduled must not crash the batch that recorded it.
MAX_BACKOFF = timedelta(days=100 * 365)


def backoff_until(retries: Retries | None, prior_attempts: int, now: datetime) -> datetime:
    """When the next try may start: ``now`` without a backoff (reference §8.4), and at most
    ``MAX_BACKOFF`` after it."""
    if retries is None or retries.backoff is None:
        return now
    delay = seconds(retries.backoff.delay)
    if retries.backoff.type == "exponential":
        delay *= 2.0 ** min(prior_attempts, 128)
    return now + timedelta(seconds=min(delay, MAX_BACKOFF.total_seconds()))


def task_max_retries(task_retries: Retries | None, workflow_retries: Retries | None) -> int:
    """A task's own attempts, else the workflow's attempts, else 0 (reference §8.2 step 4)."""
    if task_retries is not None and task_retries.attempts is not None:
        return task_retries.attempts
    if workflow_retries is not None and workflow_retries.attempts is not None:
        return workflow_retries.attempts
    return 0


def failures_since_success(status: TaskStatus | None, failed_since: int) -> int:
    """Tries that count against a task's cap.

    A step that succeeded earlier and is re-run (``should_restore=False``) counts only the
    failures since that success, so it can still run out of retries.
    """
    if status is None:
        return 0
    return failed_since if status.complete else status.total_tried


@dataclass(frozen=True)
class WorkflowVerdict:
    final: bool
    wait_until: datetime | None


def workflow_verdict(
    workflow_retries: Retries | None, total_tried: int, now: datetime, *, step: bool = False
) -> WorkflowVerdict:
    """Whether the job may try again under the workflow's cap (reference §8.2 step 7.2).

    ``Retries`` without ``attempts`` on a workflow caps nothing after a failed ``step`` (the
    step's own cap decides, and the workflow's backoff still applies), and counts as 0 retries
    after a handler error, so that one can never retry forever.
    """
    if workflow_retries is None:
        return WorkflowVerdict(final=False, wait_until=None)
    cap = workflow_retries.attempts
    if cap is None and not step:
        cap = 0
    if cap is not None and total_tried >= cap:
        return WorkflowVerdict(final=True, wait_until=None)
    return WorkflowVerdict(
        final=False, wait_until=backoff_until(workflow_retries, total_tried, now)
    )
