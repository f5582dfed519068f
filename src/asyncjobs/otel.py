"""The OpenTelemetry side of ``asyncjobs.telemetry``: the only module importing opentelemetry.

Spans and instruments come from the global providers, looked up once: they follow providers
the application sets later. Until it sets one, nothing is done for it, not even the API's
no-op calls, so an installed but unconfigured OpenTelemetry costs a check per hook.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections.abc import Awaitable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import context, metrics, propagate, trace
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import ProxyTracerProvider, Span, SpanKind, StatusCode

if TYPE_CHECKING:
    from asyncjobs.attempt import Attempt
    from asyncjobs.models import JobRow
    from asyncjobs.storage import Store
    from asyncjobs.storage.monitoring import QueueCount


class Step(Protocol):
    """What a span needs of a step being executed."""

    @property
    def slug(self) -> str: ...

    @property
    def task_id(self) -> str: ...


SCOPE = "asyncjobs"
SYSTEM = "asyncjobs"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
STATUS = "asyncjobs.job.status"
ERROR_TYPE = "error.type"
Row = Mapping[str, Any]


def job_attributes(row: Row, operation: str) -> dict[str, Any]:
    """What every span of a job carries (``messaging.*`` per the messaging conventions)."""
    return {
        "messaging.system": SYSTEM,
        DESTINATION: row["queue"],
        "messaging.operation.name": operation,
        "messaging.operation.type": operation,
        "asyncjobs.job.slug": row.get("workflow_slug") or row.get("task_slug") or "",
    }


def running_attributes(row: JobRow) -> dict[str, Any]:
    """A ``process`` or ``step`` span's: the job's id and which attempt (1 for the first)."""
    return {
        **job_attributes(row._asdict(), "process"),
        MESSAGE_ID: str(row.id),
        "asyncjobs.job.attempt": row.total_tried + 1,
    }


def failed(span: Span, error_type: str) -> None:
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(StatusCode.ERROR)


class Otel:
    """The tracer and the three instruments, and the queue depths the gauge reports."""

    def __init__(self) -> None:
        self.tracer = trace.get_tracer(SCOPE)
        meter = metrics.get_meter(SCOPE)
        self.duration = meter.create_histogram(
            "messaging.process.duration", unit="s", description="Duration of job attempts"
        )
        self.finished = meter.create_counter(
            "asyncjobs.jobs.finished", unit="{job}", description="Job attempts that ended"
        )
        meter.create_observable_gauge(
            "asyncjobs.queue.depth",
            callbacks=[self._observe_depth],
            unit="{job}",
            description="Unfinished jobs by queue and status",
        )
        self._depths: weakref.WeakKeyDictionary[Store, list[QueueCount]] = (
            weakref.WeakKeyDictionary()
        )
        self._counted_at = -math.inf
        self._wanted = False
        self._lock = threading.Lock()  # readers collect from their own thread

    # -- queueing --------------------------------------------------------------------------

    async def created(self, rows: Sequence[dict[str, Any]], insert: Awaitable[Any]) -> Any:
        """One ``create`` span per row, whose context is stored with the row."""
        spans = [
            self.tracer.start_span(
                f"create {row['queue']}",
                kind=SpanKind.PRODUCER,
                attributes=job_attributes(row, "create"),
            )
            for row in rows
        ]
        for row, span in zip(rows, spans, strict=True):
            row["trace_context"] = carrier(span)
        try:
            stored = await insert
        except BaseException as exc:
            for span in spans:
                failed(span, type(exc).__name__)
                span.end()
            raise
        for span, row in zip(spans, stored, strict=True):
            span.set_attribute(MESSAGE_ID, str(row["id"]))
            span.end()
        return stored

    # -- running ---------------------------------------------------------------------------

    @contextmanager
    def process(self, attempt: Attempt) -> Iterator[Span]:
        """The attempt's ``process`` span, current while it runs; ended by the caller."""
        row = attempt.row
        parent = stored_context(row.trace_context)
        span = self.tracer.start_span(
            f"process {row.queue}",
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=running_attributes(row),
        )
        token = context.attach(trace.set_span_in_context(span, parent))
        try:
            yield span
        finally:
            context.detach(token)

    @contextmanager
    def step(self, attempt: Attempt, step: Step) -> Iterator[None]:
        attributes = {**running_attributes(attempt.row), "asyncjobs.step.id": step.task_id}
        with self.tracer.start_as_current_span(
            f"step {step.slug}",
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield
            except BaseException as exc:
                cause = getattr(exc, "cause", None)  # a nested step's failure: its root cause
                failed(span, type(cause if isinstance(cause, BaseException) else exc).__name__)
                raise

    @staticmethod
    def carrier(span: Span) -> dict[str, str] | None:
        return carrier(span)

    @staticmethod
    def tracing() -> bool:
        """Whether the application set a tracer provider."""
        return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)

    @staticmethod
    def metering() -> bool:
        """Whether the application set a meter provider."""
        return type(metrics.get_meter_provider()).__name__ != "_ProxyMeterProvider"

    @staticmethod
    def end(span: Span, status: str, error_type: str | None) -> None:
        """End the ``process`` span of an attempt that ended in ``status``."""
        span.set_attribute(STATUS, status)
        if error_type is not None or status == "aborted":
            failed(span, error_type or status)
        span.end()

    def ended(self, queue: str, status: str, seconds: float) -> None:
        """Count and time an attempt that ended in ``status``."""
        attributes = {DESTINATION: queue, STATUS: status}
        self.duration.record(seconds, attributes)
        self.finished.add(1, attributes)

    # -- queue depth -----------------------------------------------------------------------

    def depth_due(self, every: float) -> bool:
        """Whether a reader collected the gauge since the last count, ``every`` s ago or more."""
        return self._wanted and time.monotonic() - self._counted_at >= every

    def counting(self) -> None:
        """A count starts now: the next one waits for another collection."""
        self._wanted, self._counted_at = False, time.monotonic()

    def set_depths(self, store: Store, counts: list[QueueCount]) -> None:
        with self._lock:
            self._depths[store] = counts

    def _observe_depth(self, _options: CallbackOptions) -> Iterable[Observation]:
        self._wanted = True
        with self._lock:
            depths = [(s, c) for s, c in self._depths.items() if s.is_open]
        totals: dict[tuple[str, str], int] = {}
        for _store, counts in depths:
            for count in counts:
                key = (count.queue, count.status)
                totals[key] = totals.get(key, 0) + count.count
        return [Observation(n, {DESTINATION: q, STATUS: s}) for (q, s), n in totals.items()]


def carrier(span: Span) -> dict[str, str] | None:
    """The W3C ``traceparent`` (and ``tracestate``, baggage) of ``span``, to store."""
    found: dict[str, str] = {}
    propagate.inject(found, context=trace.set_span_in_context(span))
    return found or None


def stored_context(stored: Any) -> context.Context:
    """The context stored with a job, or a fresh root for a job queued outside any trace
    (not the context of whatever runs it, say a ``GET /run`` request)."""
    if isinstance(stored, Mapping) and stored:
        return propagate.extract({str(k): str(v) for k, v in stored.items()}, context.Context())
    return context.Context()
