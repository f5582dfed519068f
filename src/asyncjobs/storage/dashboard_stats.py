"""The dashboard's overview in one statement: per queue, jobs by status and the last hour.

One statement for every queue, because each statement costs the aiosqlite driver several
hand-offs to its thread, and on a busy machine each hand-off can wait for the scheduler. Each
queue contributes the parts below as rows of one ``UNION ALL``: ``(queue, part, label, minute,
number, due)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Integer,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    true,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from asyncjobs.storage import dashboard_filters, filters
from asyncjobs.storage.dashboard_filters import Count
from asyncjobs.storage.tables import CANCELLED, COMPLETED, FAILED, UTCDateTime, jobs

CHART_MINUTES = 60
CHART_SAMPLE = 2_000
QUEUES_PER_STATEMENT = 50  # SQLite allows 500 terms in one compound SELECT; a queue takes 6
UNFINISHED = ("queued", "waiting", "suspended", "processing")


@dataclass(frozen=True)
class QueueStats:
    """One queue at a glance: jobs by status, the oldest due job, the last hour per minute."""

    queue: str
    counts: dict[str, Count]
    oldest_due: datetime | None
    completed: list[int] = field(default_factory=list)  # per minute, oldest first
    failed: list[int] = field(default_factory=list)
    failed_partial: bool = False  # the failures shown are the newest CHART_SAMPLE only


class minutes_since(FunctionElement[int]):
    """Whole minutes from a start time to a timestamp column (each backend's own arithmetic)."""

    type = Integer()
    inherit_cache = True


@compiles(minutes_since, "postgresql")
def _minutes_pg(element: minutes_since, compiler: SQLCompiler, **kw: Any) -> str:
    moment, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST(floor(extract(epoch FROM ({moment} - {start})) / 60) AS INTEGER)"


@compiles(minutes_since, "sqlite")
def _minutes_sqlite(element: minutes_since, compiler: SQLCompiler, **kw: Any) -> str:
    moment, start = (compiler.process(c, **kw) for c in element.clauses)
    return f"CAST((julianday({moment}) - julianday({start})) * 1440 AS INTEGER)"


def at(moment: datetime) -> Any:
    return literal(moment, UTCDateTime())


async def queue_stats(
    conn: AsyncConnection, queues: Sequence[str], now: datetime
) -> dict[str, QueueStats]:
    """The overview of each of ``queues``."""
    since = now - timedelta(minutes=CHART_MINUTES)
    found = {queue: _Collected() for queue in queues}
    for start in range(0, len(queues), QUEUES_PER_STATEMENT):
        chunk = queues[start : start + QUEUES_PER_STATEMENT]
        parts = [part for queue in chunk for part in _parts(queue, now, since)]
        for row in await conn.execute(union_all(*parts)):
            found[row.queue].add(row)
    return {queue: collected.stats(queue) for queue, collected in found.items()}


def _parts(queue: str, now: datetime, since: datetime) -> list[Any]:
    return [
        _unfinished(queue, now),
        *(_capped(queue, name, where) for name, where in _FINISHED.items()),
        _completed_per_minute(queue, since),
        _failures_per_minute(queue, since),
    ]


_FINISHED = {"failed": FAILED, "cancelled": CANCELLED, "completed": (COMPLETED,)}


def _row(queue: str, part: str, label: Any, minute: Any, number: Any, due: Any) -> Any:
    return select(
        literal(queue, String()).label("queue"),
        literal(part, String()).label("part"),
        label.label("label"),
        minute.label("minute"),
        number.label("number"),
        due.label("due"),
    )


def _none_text() -> Any:
    return cast(null(), String())


def _none_minute() -> Any:
    return cast(null(), Integer())


def _none_time() -> Any:
    return cast(null(), UTCDateTime())


def _unfinished(queue: str, now: datetime) -> Any:
    """Queued, waiting and processing among the oldest ``CAP + 1`` unfinished jobs, and when
    the oldest queued one became due."""
    status = case(
        (jobs.c.processing_until > now, literal("processing", String())),
        (and_(jobs.c.wait_until > now, jobs.c.suspended == true()), literal("suspended", String())),
        (jobs.c.wait_until > now, literal("waiting", String())),
        else_=literal("queued", String()),
    ).label("status")
    due = case(
        (jobs.c.wait_until > jobs.c.created_at, jobs.c.wait_until), else_=jobs.c.created_at
    ).label("due")
    sample = (
        select(status, due)
        .where(jobs.c.queue == queue, filters.unfinished())
        .order_by(jobs.c.created_at, jobs.c.id)
        .limit(dashboard_filters.CAP + 1)
        .subquery()
    )
    oldest = func.min(case((sample.c.status == "queued", sample.c.due)))
    row = _row(queue, "unfinished", sample.c.status, _none_minute(), func.count(), oldest)
    return row.select_from(sample).group_by(sample.c.status)


def _capped(queue: str, name: str, where: Iterable[Any]) -> Any:
    number = dashboard_filters.capped_count([jobs.c.queue == queue, *where])
    return _row(queue, "count", literal(name, String()), _none_minute(), number, _none_time())


def _completed_per_minute(queue: str, since: datetime) -> Any:
    minute = minutes_since(jobs.c.completed_at, at(since))
    row = _row(queue, "completed", _none_text(), minute, func.count(), _none_time())
    return row.where(jobs.c.queue == queue, COMPLETED, jobs.c.completed_at >= since).group_by(
        minute
    )


def _failures_per_minute(queue: str, since: datetime) -> Any:
    """Among the newest ``CHART_SAMPLE`` failed jobs, by the time each was last updated."""
    sample = (
        select(jobs.c.updated_at)
        .where(jobs.c.queue == queue, *FAILED)
        .order_by(jobs.c.id.desc())
        .limit(CHART_SAMPLE)
        .subquery()
    )
    minute = minutes_since(sample.c.updated_at, at(since))
    row = _row(queue, "failed", _none_text(), minute, func.count(), _none_time())
    return row.select_from(sample).where(sample.c.updated_at >= since).group_by(minute)


class _Collected:
    """The rows of one queue, folded into its :class:`QueueStats`."""

    def __init__(self) -> None:
        self.unfinished: dict[str, int] = {}
        self.counts: dict[str, Count] = {}
        self.oldest: datetime | None = None
        self.charts: dict[str, list[int]] = {
            "completed": [0] * CHART_MINUTES,
            "failed": [0] * CHART_MINUTES,
        }

    def add(self, row: Any) -> None:
        if row.part == "unfinished":
            self.unfinished[row.label] = row.number
            self.oldest = row.due if row.label == "queued" else self.oldest
        elif row.part == "count":
            cap = dashboard_filters.CAP
            self.counts[row.label] = Count(min(row.number, cap), row.number > cap)
        elif row.minute is not None and 0 <= row.minute <= CHART_MINUTES:
            # The last minute includes "now".
            self.charts[row.part][min(row.minute, CHART_MINUTES - 1)] += row.number

    def stats(self, queue: str) -> QueueStats:
        cap = dashboard_filters.CAP
        full = sum(self.unfinished.values()) > cap
        counts = {name: Count(min(self.unfinished.get(name, 0), cap), full) for name in UNFINISHED}
        failed = self.charts["failed"]
        return QueueStats(
            queue,
            {**counts, **self.counts},
            self.oldest,
            self.charts["completed"],
            failed,
            failed_partial=sum(failed) >= CHART_SAMPLE,
        )
