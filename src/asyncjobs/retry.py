"""Retry policy (``Retries``, ``Backoff``) and the pure decisions made from it: caps, backoff,
and ``decide``, the one answer to "a try failed: again, and when?"."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from asyncjobs.checks import HOOK_ARGS, Seconds, seconds
from asyncjobs.injection import check_injectable


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """How long to wait before the next try.

    ``fixed`` waits ``delay`` seconds; ``exponential`` waits ``delay * 2 ** prior_attempts``.
    """

    type: Literal["fixed", "exponential"] = "fixed"
    delay: Seconds = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("fixed", "exponential"):
            raise ValueError(f"Backoff type must be 'fixed' or 'exponential', got {self.type!r}")
        if not 0 <= seconds(self.delay) < math.inf:  # also refuses NaN
            raise ValueError(
                f"Backoff delay must be a finite, non-negative duration, got {self.delay!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Retries:
    """Retry policy: ``attempts`` retries allow ``attempts + 1`` runs.

    ``attempts=None`` on a task inherits the workflow's attempt count.
    ``should_restore`` is a bool or a callable ``(*, input, job, task_status)``.
    """

    attempts: int | None = None
    backoff: Backoff | None = None
    should_restore: bool | Callable[..., bool | Awaitable[bool]] = True

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            not isinstance(self.attempts, int)
            or isinstance(self.attempts, bool)
            or self.attempts < 0
        ):
            raise ValueError(f"Retries attempts must be a non-negative int, got {self.attempts!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"Retries backoff must be a Backoff, got {self.backoff!r}")
        if not isinstance(self.should_restore, bool):
            check_injectable(self.should_restore, HOOK_ARGS, "should_restore")


RetriesLike = int | Retries | None


def as_retries(value: RetriesLike, what: str = "retries") -> Retries | None:
    """Normalise ``retries=N`` to ``Retries(attempts=N)``."""
    if value is None or isinstance(value, Retries):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retries(attempts=value)
    raise TypeError(f"{what} must be an int or Retries, got {value!r}")


def merge_retries(base: Retries | None, override: RetriesLike) -> Retries | None:
    """Call-site retries win field by field over the task's own.

    A number at the call site changes only ``attempts``: the task's backoff and
    ``should_restore`` stay.
    """
    numeric = override is not None and not isinstance(override, Retries)
    call = as_retries(override)
    if base is None or call is None:
        return call or base
    if numeric:
        return dataclasses.replace(base, attempts=call.attempts)
    return Retries(
        attempts=call.attempts if call.attempts is not None else base.attempts,
        backoff=call.backoff or base.backoff,
        should_restore=call.should_restore,
    )


# The longest wait a backoff sets: exponential growth soon passes the last date a datetime
# can hold, and a retry that cannot be scheduled must not crash the batch that recorded it.
MAX_BACKOFF = timedelta(days=100 * 365)


def backoff_until(retries: Retries | None, prior_attempts: int, now: datetime) -> datetime:
    """When the next try may start: ``now`` without a backoff (the next run may retry at once),
    and at most ``MAX_BACKOFF`` after it."""
    if retries is None or retries.backoff is None:
        return now
    delay = seconds(retries.backoff.delay)
    if retries.backoff.type == "exponential":
        delay *= 2.0 ** min(prior_attempts, 128)
    return now + timedelta(seconds=min(delay, MAX_BACKOFF.total_seconds()))


def task_max_retries(task_retries: Retries | None, workflow_retries: Retries | None) -> int:
    """How many times a failed step may be retried: the task's own attempts, else the
    workflow's attempts, else 0."""
    if task_retries is not None and task_retries.attempts is not None:
        return task_retries.attempts
    if workflow_retries is not None and workflow_retries.attempts is not None:
        return workflow_retries.attempts
    return 0


@dataclass(frozen=True)
class WorkflowVerdict:
    final: bool
    wait_until: datetime | None


def workflow_verdict(
    workflow_retries: Retries | None, total_tried: int, now: datetime, *, step: bool = False
) -> WorkflowVerdict:
    """Whether the job may try again under the workflow's cap: ``total_tried`` tries before
    this one, against ``attempts`` retries; if so, not before the workflow's backoff.

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


@dataclass(frozen=True)
class StepTries:
    """What a failed step adds to the decision: its own retries (after the call site's), its
    tries before this one, and its failures since its last success (this one not counted)."""

    retries: Retries | None
    prior: int
    since_success: int


@dataclass(frozen=True)
class Decision:
    """``final``: the job fails for good; ``wait_until``: the value to write for it."""

    final: bool
    wait_until: datetime | None


def decide(
    *,
    job: Retries | None,
    tried: int,
    pending: datetime | None,
    now: datetime,
    step: StepTries | None = None,
) -> Decision:
    """A try of a job failed (``step=None``: its handler raised): try again, and when?

    ``job`` is the workflow's retries (``None`` for a single-task job), ``tried`` the job's
    tries before this one, ``pending`` its current ``wait_until``. A retry waits for the
    latest of: a still pending ``wait_until``, the step's backoff, the workflow's backoff. A
    step's final failure keeps a pending ``wait_until`` (and its backoff); a handler's final
    failure clears it.
    """
    wait = pending if pending is not None and pending > now else None
    if step is None:
        return _handler_decision(job, tried, wait, now)
    return _step_decision(job, tried, wait, now, step)


def _handler_decision(
    job: Retries | None, tried: int, wait: datetime | None, now: datetime
) -> Decision:
    """Only the workflow's retries count; a job without any fails for good."""
    if job is None:
        return Decision(final=True, wait_until=None)
    verdict = workflow_verdict(job, tried, now)
    if verdict.final:
        return Decision(final=True, wait_until=None)
    return Decision(final=False, wait_until=_later(wait, verdict.wait_until))


def _step_decision(
    job: Retries | None, tried: int, wait: datetime | None, now: datetime, step: StepTries
) -> Decision:
    """The step's cap first, then the workflow's."""
    if step.since_success >= task_max_retries(step.retries, job):
        return Decision(final=True, wait_until=wait)
    wait = _later(wait, backoff_until(step.retries, step.prior, now))
    verdict = workflow_verdict(job, tried, now, step=True)
    return Decision(final=verdict.final, wait_until=_later(wait, verdict.wait_until))


def _later(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None or b is None:
        return a or b
    return max(a, b)
