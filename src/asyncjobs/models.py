"""Read models: Job, JobLogEntry, TaskStatus, RunResult, ScheduleResult (frozen pydantic),
and ``JobRow``, a stored job as the engine holds it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

JobStatusName = Literal[
    "queued", "waiting", "suspended", "processing", "completed", "failed", "cancelled"
]
RunStatus = Literal["success", "error", "error-reached-max-retries", "suspended"]
# The ``wait_until`` of a job suspended without a timeout: never due by itself, so claims
# (which look only at ``wait_until``) pass it by until a signal or its child wakes it.
FOREVER = datetime(9999, 1, 1, tzinfo=UTC)

_FROZEN = ConfigDict(frozen=True)


class JobRow(NamedTuple):
    """One row of the jobs table, typed and immutable; fields in the table's column order.

    The engine holds a claimed job as one and replaces it (``_replace``) after each write.
    """

    id: int
    queue: str
    task_slug: str | None
    workflow_slug: str | None
    input: Any
    meta: Any
    wait_until: datetime | None
    processing_until: datetime | None
    processing_token: str | None
    completed_at: datetime | None
    has_error: bool
    error: dict[str, Any] | None
    total_tried: int
    log: list[dict[str, Any]] | None
    concurrency_key: str | None
    exclusive: bool
    created_at: datetime
    updated_at: datetime
    trace_context: dict[str, Any] | None = None
    output: Any = None
    priority: int = 0
    idempotency_key: str | None = None
    parent_id: int | None = None
    suspended: bool | None = None

    @property
    def slug(self) -> str:
        """The workflow slug, or the task slug of a single-task job."""
        return self.workflow_slug or self.task_slug or ""

    @classmethod
    def of(cls, row: Mapping[str, Any] | JobRow) -> JobRow:
        """The ``JobRow`` of a row storage returned (a mapping of every column)."""
        return row if isinstance(row, JobRow) else cls(**row)


class JobLogEntry(BaseModel):
    """One attempt of one step of a job."""

    model_config = _FROZEN

    id: str
    executed_at: datetime
    completed_at: datetime
    task_slug: str
    task_id: str
    input: Any = None
    output: Any = None
    state: Literal["succeeded", "failed"]
    error: dict[str, Any] | None = None
    parent: dict[str, str] | None = None


class TaskStatus(BaseModel):
    """A step's state folded from the log: complete once any attempt succeeded."""

    model_config = _FROZEN

    complete: bool
    input: Any = None
    output: Any = None
    total_tried: int


def fold_task_status(log: Iterable[JobLogEntry]) -> dict[str, dict[str, TaskStatus]]:
    """``task_status[slug][task_id]`` folded from the log in order: a step is complete once any
    attempt succeeded; its input and output are its last success's (else its first attempt's),
    and ``total_tried`` counts every attempt."""
    status: dict[str, dict[str, TaskStatus]] = {}
    for entry in log:
        by_id = status.setdefault(entry.task_slug, {})
        before = by_id.get(entry.task_id)
        succeeded = entry.state == "succeeded"
        if before is None or succeeded:
            by_id[entry.task_id] = TaskStatus(
                complete=succeeded or (before is not None and before.complete),
                input=entry.input,
                output=entry.output,
                total_tried=(before.total_tried if before else 0) + 1,
            )
        else:
            by_id[entry.task_id] = before.model_copy(update={"total_tried": before.total_tried + 1})
    return status


def step_status(log: Iterable[Mapping[str, Any]], slug: str, task_id: str) -> TaskStatus | None:
    """One step's :class:`TaskStatus` from raw log entries, folded like ``fold_task_status``."""
    found, complete, tried, values = False, False, 0, (None, None)
    for entry in log:
        if entry["task_slug"] != slug or entry["task_id"] != task_id:
            continue
        succeeded = entry["state"] == "succeeded"
        if not found or succeeded:
            values = (entry.get("input"), entry.get("output"))
        found, complete, tried = True, complete or succeeded, tried + 1
    if not found:
        return None
    return TaskStatus(complete=complete, input=values[0], output=values[1], total_tried=tried)


class Job(BaseModel):
    """A snapshot of one persisted run of a task or workflow."""

    model_config = _FROZEN

    id: int
    input: dict[str, Any] = Field(default_factory=dict)
    queue: str
    task_slug: str | None = None
    workflow_slug: str | None = None
    wait_until: datetime | None = None
    processing_until: datetime | None = None
    completed_at: datetime | None = None
    has_error: bool = False
    error: dict[str, Any] | None = None
    total_tried: int = 0
    log: list[JobLogEntry] = Field(default_factory=list)
    task_status: dict[str, dict[str, TaskStatus]] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    concurrency_key: str | None = None
    created_at: datetime
    updated_at: datetime
    status: JobStatusName = "queued"
    output: Any = None
    priority: int = 0
    idempotency_key: str | None = None
    parent_id: int | None = None

    @property
    def slug(self) -> str:
        """The workflow slug, or the task slug of a single-task job."""
        return self.workflow_slug or self.task_slug or ""


def job_status(values: Mapping[str, Any], now: datetime) -> JobStatusName:
    """Derive the status of a job row (as a mapping) against ``now``."""
    error = values.get("error") or {}
    if values.get("has_error"):
        return "cancelled" if error.get("cancelled") else "failed"
    if values.get("completed_at") is not None:
        return "completed"
    until = values.get("processing_until")
    if until is not None and until > now:
        return "processing"
    wait = values.get("wait_until")
    if wait is not None and wait > now:
        return "suspended" if values.get("suspended") else "waiting"
    return "queued"


def make_job(row: Mapping[str, Any] | JobRow, now: datetime) -> Job:
    """Build a :class:`Job` from a stored row (the one place rows become models)."""
    values = row._asdict() if isinstance(row, JobRow) else row
    raw_log = values.get("log")
    log = [JobLogEntry.model_validate(entry) for entry in raw_log] if raw_log else []
    fields = dict(values)  # columns without a Job field (processing_token, ...) are ignored
    fields["input"] = fields.get("input") or {}
    fields["meta"] = fields.get("meta") or {}
    fields["log"] = log
    fields["task_status"] = fold_task_status(log) if log else {}
    fields["status"] = job_status(values, now)
    if fields.get("wait_until") == FOREVER:
        fields["wait_until"] = None  # suspended until woken: no time of its own
    return Job.model_validate(fields)


def made_job(row: Mapping[str, Any], now: datetime) -> Job:
    """:func:`make_job` for a row just written by this process (an inserted job, or the
    holder of its idempotency key): its values already have their fields' types, so the
    ``Job`` is built without validating them again. A row with a log is validated."""
    if row.get("log"):
        return make_job(row, now)
    fields = {name: row.get(name) for name in _JOB_FIELDS}
    fields["input"] = fields["input"] or {}
    fields["meta"] = fields["meta"] or {}
    fields["log"], fields["task_status"] = [], {}
    fields["status"] = job_status(row, now)
    if fields["wait_until"] == FOREVER:
        fields["wait_until"] = None
    return _trusted(fields)


def _trusted(fields: dict[str, Any]) -> Job:
    """A ``Job`` of every field's value as given: what ``Job.model_construct`` makes, without
    its per-field look-ups of aliases and defaults (``Job`` has neither aliases nor
    private attributes)."""
    job = Job.__new__(Job)
    object.__setattr__(job, "__dict__", fields)
    object.__setattr__(job, "__pydantic_fields_set__", set(_JOB_FIELDS))
    object.__setattr__(job, "__pydantic_extra__", None)
    object.__setattr__(job, "__pydantic_private__", None)
    return job


_JOB_FIELDS = tuple(Job.model_fields)


class RunResult(BaseModel):
    """What one ``run()`` did: per-job status, retries left, and whether anything ran."""

    model_config = _FROZEN

    job_status: dict[int, RunStatus] = Field(default_factory=dict)
    remaining_jobs_from_queried: int = 0
    no_jobs_remaining: bool = False


class ScheduleResult(BaseModel):
    """``(slug, queue)`` pairs per outcome of ``handle_schedules()``."""

    model_config = _FROZEN

    queued: list[tuple[str, str]] = Field(default_factory=list)
    skipped: list[tuple[str, str]] = Field(default_factory=list)
    errored: list[tuple[str, str]] = Field(default_factory=list)
