"""Table definitions and the column types that keep SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
    and_,
    false,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import TypeDecorator

from asyncjobs.checks import MAX_IDEMPOTENCY_KEY_LENGTH, MAX_KEY_LENGTH, MAX_NAME_LENGTH

SCHEMA_VERSION = 6  # see ``migrations`` for what each version added


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends (SQLite stores naive UTC text that sorts right)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: asyncjobs needs timezone-aware times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Json = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")
Id = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData()

jobs = Table(
    "asyncjobs_jobs",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("queue", String(MAX_NAME_LENGTH), nullable=False),
    Column("task_slug", String(MAX_NAME_LENGTH)),
    Column("workflow_slug", String(MAX_NAME_LENGTH)),
    Column("input", Json, nullable=False),
    Column("meta", Json, nullable=False),
    Column("wait_until", UTCDateTime),
    Column("processing_until", UTCDateTime),
    Column("processing_token", String(64)),
    Column("completed_at", UTCDateTime),
    Column("has_error", Boolean, nullable=False, default=False, server_default=false()),
    Column("error", Json),
    Column("total_tried", Integer, nullable=False, default=0, server_default="0"),
    # NULL until the first step is logged, so "never started" needs no JSON function.
    Column("log", Json),
    Column("concurrency_key", String(MAX_KEY_LENGTH)),
    Column("exclusive", Boolean, nullable=False, default=False, server_default=false()),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    # W3C trace context (traceparent, tracestate) active when the job was queued.
    Column("trace_context", Json),
    # What the job returned, written with its completion (NULL until then).
    Column("output", Json),
    # Higher runs first (-100..100); claims order by it before the processing order.
    Column("priority", Integer, nullable=False, default=0, server_default="0"),
    # While the job is unfinished, no other job may be queued with this key.
    Column("idempotency_key", String(MAX_IDEMPOTENCY_KEY_LENGTH)),
    # The job whose ``run_child`` step queued this one.
    Column("parent_id", Id),
    # True while a durable wait (a signal, a child) holds the job: runnable again when woken
    # (``wait_until`` cleared) or when ``wait_until``, its timeout, comes.
    Column("suspended", Boolean),
)

_UNFINISHED = (jobs.c.completed_at.is_(None)) & (jobs.c.has_error == false())

# Claims only ever look at unfinished jobs, so a partial index keeps them cheap however many
# finished jobs the table keeps; it holds the claims' default order (priority first).
Index(
    "ix_asyncjobs_jobs_claim",
    jobs.c.queue,
    jobs.c.priority.desc(),
    jobs.c.created_at,
    jobs.c.id,
    postgresql_where=_UNFINISHED,
    sqlite_where=_UNFINISHED,
)
Index(
    "ix_asyncjobs_jobs_key",
    jobs.c.concurrency_key,
    postgresql_where=jobs.c.concurrency_key.is_not(None),
    sqlite_where=jobs.c.concurrency_key.is_not(None),
)
# The holder of each idempotency key: inserts skip a taken key (ON CONFLICT DO NOTHING)
# atomically on both backends, and a job leaves the index when it finishes.
Index(
    "ux_asyncjobs_jobs_idempotency_key",
    jobs.c.idempotency_key,
    unique=True,
    postgresql_where=_UNFINISHED,
    sqlite_where=_UNFINISHED,
)
Index(
    "ix_asyncjobs_jobs_parent",
    jobs.c.parent_id,
    postgresql_where=jobs.c.parent_id.is_not(None),
    sqlite_where=jobs.c.parent_id.is_not(None),
)
Index("ix_asyncjobs_jobs_task_slug", jobs.c.task_slug)
Index("ix_asyncjobs_jobs_workflow_slug", jobs.c.workflow_slug)


class cancelled_error(FunctionElement[bool]):
    """Whether the ``error`` column says the job was cancelled; false for no error.

    Rendered with no bound parameter, so that partial indexes and the queries meant to use
    them hold the same expression.
    """

    type = Boolean()
    inherit_cache = True


@compiles(cancelled_error, "postgresql")
def _cancelled_pg(element: cancelled_error, compiler: SQLCompiler, **kw: Any) -> str:
    error = compiler.process(element.clauses, **kw)
    return f"""coalesce({error} @> '{{"cancelled": true}}', false)"""


@compiles(cancelled_error)
def _cancelled_sqlite(element: cancelled_error, compiler: SQLCompiler, **kw: Any) -> str:
    error = compiler.process(element.clauses, **kw)
    return f"coalesce(json_extract({error}, '$.cancelled') = 1, 0)"


# The dashboard's counts, charts and status lists of finished jobs: with the runnable index
# above, every row is in one of these per-queue indexes. Claims write none of their columns.
COMPLETED = jobs.c.completed_at.is_not(None)
FAILED = (jobs.c.has_error == true(), ~cancelled_error(jobs.c.error))
CANCELLED = (jobs.c.has_error == true(), cancelled_error(jobs.c.error))
Index(
    "ix_asyncjobs_jobs_completed",
    jobs.c.queue,
    jobs.c.completed_at,
    postgresql_where=COMPLETED,
    sqlite_where=COMPLETED,
)
Index(
    "ix_asyncjobs_jobs_failed",
    jobs.c.queue,
    jobs.c.id,
    postgresql_where=and_(*FAILED),
    sqlite_where=and_(*FAILED),
)
Index(
    "ix_asyncjobs_jobs_cancelled",
    jobs.c.queue,
    jobs.c.id,
    postgresql_where=and_(*CANCELLED),
    sqlite_where=and_(*CANCELLED),
)
# Pruning by age (``Retention``), whatever the queue: completed jobs by ``completed_at``, failed
# and cancelled ones by id (about the order they failed in). No index may hold ``updated_at``
# or the lease columns: claims and renewals write them, and PostgreSQL updates a row in place
# (HOT, without touching its indexes) only while no indexed column changes.
SUCCEEDED = (COMPLETED, jobs.c.has_error == false())
ERRORED = jobs.c.has_error == true()
Index(
    "ix_asyncjobs_jobs_completed_at",
    jobs.c.completed_at,
    postgresql_where=and_(*SUCCEEDED),
    sqlite_where=and_(*SUCCEEDED),
)
Index("ix_asyncjobs_jobs_errored", jobs.c.id, postgresql_where=ERRORED, sqlite_where=ERRORED)

# Signals sent to jobs (``jobs.signal``, and a child's outcome to its parent), oldest first
# per topic; a step consumes one by logging its id, so consumption is fenced like any step.
signals = Table(
    "asyncjobs_signals",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("job_id", Id, nullable=False),
    Column("topic", String(MAX_NAME_LENGTH), nullable=False),
    Column("payload", Json),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_asyncjobs_signals_job", signals.c.job_id, signals.c.topic, signals.c.id)

schedules = Table(
    "asyncjobs_schedules",
    metadata,
    Column("key", String(500), primary_key=True),
    Column("last_tick", UTCDateTime),
    Column("updated_at", UTCDateTime, nullable=False),
)

schema_version = Table(
    "asyncjobs_schema",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version", Integer, nullable=False),
    UniqueConstraint("id"),
)


def row_values(row: Any) -> dict[str, Any]:
    """A result row of ``jobs`` as a plain dict."""
    return dict(row._mapping)


# The jobs columns by name, in table order; what an INSERT sets (the database makes the id).
COLUMNS: tuple[str, ...] = tuple(c.name for c in jobs.c)
INSERT_COLUMNS: tuple[str, ...] = tuple(name for name in COLUMNS if name != "id")
# Quoted, for the backends' driver SQL.
COLUMN_LIST = ", ".join(f'"{name}"' for name in INSERT_COLUMNS)
RETURNING_ALL = ", ".join(f'"{name}"' for name in COLUMNS)
