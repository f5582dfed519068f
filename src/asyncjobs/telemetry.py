"""Hooks the queue and the runner call so jobs can be traced and measured.

With ``opentelemetry-api`` installed (extra ``asyncjobs[otel]``) they emit spans and metrics
through it (``asyncjobs.otel``); with ``prometheus_client`` installed they keep this process's
finished-attempt figures for ``GET /metrics`` (``asyncjobs.stats``). With neither, each hook is
a call and a check. What is installed is looked up once, at the first hook.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from asyncjobs import stats
from asyncjobs.errors import StorageError

if TYPE_CHECKING:
    from asyncjobs.attempt import Attempt
    from asyncjobs.models import JobRow
    from asyncjobs.otel import Otel, Step
    from asyncjobs.storage import Store

T = TypeVar("T")
DEPTH_REFRESH = 10.0  # seconds between queue-depth counts, made only while a reader collects
NOTHING: AbstractContextManager[Any] = nullcontext()
FINAL_STATUS = "error-reached-max-retries"


@dataclass(frozen=True)
class Sinks:
    otel: Otel | None
    counting: bool  # keep ``stats.FINISHED``


@dataclass(frozen=True, slots=True)
class Active:
    """The sinks in use for one claimed batch (:func:`active`): the providers are looked up
    once per batch, not once per attempt (the lookup reads the environment)."""

    tracing: Otel | None
    metering: Otel | None
    counting: bool


@dataclass(slots=True)
class Observed:
    """What telemetry keeps on a running attempt (``Attempt.observed``)."""

    start: float
    active: Active
    span: Any = None
    error_type: str | None = None


_sinks: Sinks | None = None


def sinks() -> Sinks:
    global _sinks
    if _sinks is None:
        _sinks = Sinks(_load_otel(), stats.prometheus_installed())
    return _sinks


def _load_otel() -> Otel | None:
    try:
        from asyncjobs.otel import Otel
    except ImportError:  # opentelemetry-api is not installed
        return None
    return Otel()


async def created(rows: Sequence[dict[str, Any]], insert: Awaitable[T]) -> T:
    """Await ``insert`` of ``rows`` inside one ``create`` span per row, storing each span's
    context in its row's ``trace_context``, for the job's attempts to continue."""
    otel = (_sinks or sinks()).otel
    if otel is None or not otel.tracing():
        return await insert
    stored: T = await otel.created(rows, insert)
    return stored


def active() -> Active | None:
    """The sinks the attempts claimed now report to, or ``None`` when nothing would read
    what they report."""
    current = _sinks or sinks()
    otel = current.otel
    if otel is None:
        return Active(None, None, True) if current.counting else None
    tracing, metering = otel.tracing(), otel.metering()
    if not (tracing or metering or current.counting):
        return None
    return Active(otel if tracing else None, otel if metering else None, current.counting)


def carried(attempt: Attempt) -> dict[str, str] | None:
    """The trace context of ``attempt``'s ``process`` span, for a child it queues to store
    (``None`` when not tracing), so the child's attempts continue the parent's trace."""
    otel = (_sinks or sinks()).otel
    observed = attempt.observed
    if otel is None or observed is None or observed.span is None:
        return None
    return otel.carrier(observed.span)


def process_span(attempt: Attempt, active: Active | None) -> AbstractContextManager[Any]:
    """Around one attempt: its ``process`` span, current while it runs, and its clock.

    The span ends when the attempt's outcome is known (:func:`settled`), or here when an
    exception (a cancellation) leaves before that.
    """
    return NOTHING if active is None else _Observing(attempt, active)


class _Observing:
    __slots__ = ("attempt", "observed", "span")

    def __init__(self, attempt: Attempt, active: Active) -> None:
        self.attempt = attempt
        self.observed = attempt.observed = Observed(time.perf_counter(), active)
        otel = active.tracing
        self.span = otel.process(attempt) if otel is not None else NOTHING

    def __enter__(self) -> None:
        self.observed.span = self.span.__enter__()

    def __exit__(self, kind: Any, exc: BaseException | None, traceback: Any) -> None:
        attempt, observed = self.attempt, self.observed
        if exc is not None and attempt.observed is observed:
            observed.error_type = type(exc).__name__
            _end(attempt, observed, "aborted")
        self.span.__exit__(kind, exc, traceback)


def step_span(attempt: Attempt, step: Step) -> AbstractContextManager[Any]:
    """Around one executed step (a step restored from the log gets none) of a traced
    attempt."""
    observed: Observed | None = attempt.observed
    otel = observed.active.tracing if observed is not None and observed.span is not None else None
    return NOTHING if otel is None else otel.step(attempt, step)


def failed(attempt: Attempt, error: dict[str, Any]) -> None:
    """The attempt failed with ``error`` (``Job.error``'s shape): its span says which."""
    observed = attempt.observed
    if observed is not None:
        observed.error_type = str(error.get("name") or "Exception")


def settled(attempt: Attempt, status: str | None) -> None:
    """The attempt's outcome was recorded (``status`` a ``RunStatus``), or could not be
    (``None``): end its span and count it."""
    observed = attempt.observed
    if observed is not None:
        _end(attempt, observed, outcome(attempt.row, status))


def outcome(row: JobRow, status: str | None) -> str:
    """The ``asyncjobs.job.status`` an ended attempt is counted under."""
    if status is None:
        return "aborted"
    if status == "success":
        return "completed"
    if status == "suspended":
        return "suspended"
    if status != FINAL_STATUS:
        return "retrying"
    error = row.error or {}
    return "cancelled" if error.get("cancelled") else "failed"


def _end(attempt: Attempt, observed: Observed, status: str) -> None:
    attempt.observed = None
    seconds = time.perf_counter() - observed.start
    row = attempt.row
    active = observed.active
    if active.tracing is not None and observed.span is not None:
        active.tracing.end(observed.span, status, observed.error_type)
    if active.metering is not None:
        active.metering.ended(row.queue, status, seconds)
    if active.counting:
        stats.FINISHED.add(row.queue, row.slug, status, seconds)


async def refresh_depth(store: Store, now: datetime) -> None:
    """Count unfinished jobs for the ``asyncjobs.queue.depth`` gauge, when a reader has
    collected it since the last count and that was ``DEPTH_REFRESH`` seconds ago or more.

    Gauges are read synchronously, so they report the latest count made here (on a ``run()``).
    """
    otel = (_sinks or sinks()).otel
    if otel is None or not otel.metering() or not otel.depth_due(DEPTH_REFRESH):
        return
    from asyncjobs.storage.monitoring import queue_counts

    otel.counting()
    try:
        otel.set_depths(store, await queue_counts(store, now))
    except StorageError:
        return  # the run that follows meets the same problem and says so
