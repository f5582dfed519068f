"""The dashboard's pages: overview, job list, job, schedules."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from asyncjobs import cron
from asyncjobs.dashboard import present
from asyncjobs.dashboard.host import queries
from asyncjobs.dashboard.query import JobFilter, number
from asyncjobs.definitions import DEFAULT_QUEUE, AutoRun
from asyncjobs.models import Job, job_status
from asyncjobs.schedules import collect
from asyncjobs.storage.dashboard_stats import CHART_MINUTES, QueueStats

if TYPE_CHECKING:
    from asyncjobs.dashboard.host import Dashboard, DashboardHost

PAGE_SIZE = 50
CHILDREN_SHOWN = 100
SIGNALS_SHOWN = 100
ALL_ACTIONS = ("retry", "run", "cancel")
ACTIONS_BY_STATUS: dict[str, tuple[str, ...]] = {
    "completed": (),
    "failed": ("retry",),
    "cancelled": ("retry",),
    "queued": ("run", "cancel"),
    "waiting": ("run", "cancel"),
    "suspended": ("cancel",),
    "processing": ("cancel",),
}


@dataclass(frozen=True)
class QueueCard:
    stats: QueueStats
    total: str
    oldest: str
    bars: list[present.Bar]
    completed: int
    failed: int


async def overview(dashboard: Dashboard, request: Request) -> Response:
    jobs = dashboard.jobs
    now = jobs.clock()
    since = now - timedelta(minutes=CHART_MINUTES)
    names = await known_queues(jobs)
    stats = await queries(jobs).queue_stats(names, now)
    cards = [_card(stats[name], now, since) for name in names]
    return dashboard.renderer.page(request, "overview.html", now=now, cards=cards, since=since)


def _card(stats: QueueStats, now: datetime, since: datetime) -> QueueCard:
    total = sum(c.value for c in stats.counts.values())
    capped = any(c.capped for c in stats.counts.values())
    oldest = present.age(stats.oldest_due, now).removesuffix(" ago") if stats.oldest_due else ""
    return QueueCard(
        stats=stats,
        total=present.count(total, capped),
        oldest=oldest,
        bars=present.chart(stats.completed, stats.failed, since),
        completed=sum(stats.completed),
        failed=sum(stats.failed),
    )


async def known_queues(jobs: DashboardHost) -> list[str]:
    """Queues holding jobs, plus those the definitions and autoRun entries name."""
    named = {DEFAULT_QUEUE}
    for definition in jobs.registry.all_definitions():
        named.update(schedule.queue for schedule in definition.schedule)
        named.add(getattr(definition, "queue", None) or DEFAULT_QUEUE)
    if not callable(jobs.auto_run):
        named.update(entry.queue for entry in jobs.auto_run if not entry.all_queues)
    return sorted(named | set(await queries(jobs).queues()))


@dataclass(frozen=True)
class JobRow:
    id: int
    status: str
    slug: str
    kind: str
    queue: str
    tries: int
    created: datetime
    note: present.Note


async def job_list(dashboard: Dashboard, request: Request) -> Response:
    jobs = dashboard.jobs
    params = request.query_params
    chosen = JobFilter.parse(params)
    before, after = number(params.get("before"), "before"), number(params.get("after"), "after")
    now = jobs.clock()
    page = await queries(jobs).page(
        chosen.where(jobs.registry), now=now, limit=PAGE_SIZE, before=before, after=after
    )
    rows = [_row(values, now) for values in page.rows]
    paging = _paging(chosen, rows, more=page.more, before=before, after=after)
    return dashboard.renderer.page(
        request,
        "jobs.html",
        now=now,
        filter=chosen,
        rows=rows,
        total=page.total,
        paging=paging,
        first_page=before is None and after is None,
        queues=await known_queues(jobs),
        slugs=sorted([*jobs.registry.tasks, *jobs.registry.workflows]),
        statuses=present.STATUSES,
        bulk=ACTIONS_BY_STATUS.get(chosen.status, ()) if chosen.status else ALL_ACTIONS,
    )


def _row(values: dict[str, Any], now: datetime) -> JobRow:
    status = job_status(values, now)
    return JobRow(
        id=values["id"],
        status=status,
        slug=values.get("workflow_slug") or values.get("task_slug") or "",
        kind="workflow" if values.get("workflow_slug") else "task",
        queue=values["queue"],
        tries=values["total_tried"],
        created=values["created_at"],
        note=present.note(values, status),
    )


def _paging(
    chosen: JobFilter, rows: list[JobRow], *, more: bool, before: int | None, after: int | None
) -> dict[str, str]:
    """Links to the newer and older neighbours of this page (keyset: by id, newest first)."""
    links: dict[str, str] = {}
    if not rows:
        return links
    if (after is not None and more) or before is not None:
        links["newer"] = chosen.query(after=rows[0].id)
    if (after is None and more) or after is not None:
        links["older"] = chosen.query(before=rows[-1].id)
    return links


async def job_page(dashboard: Dashboard, request: Request) -> Response:
    jobs = dashboard.jobs
    job_id = request.path_params["id"]
    job = await jobs.get(job_id)
    if job is None:
        return dashboard.renderer.refused(
            request, 404, f"Job {job_id} does not exist (finished jobs may be deleted)."
        )
    reads = queries(jobs)
    children = [
        _row(values, jobs.clock()) for values in await reads.children(job_id, CHILDREN_SHOWN)
    ]
    signals = present.signals(await reads.signals(job_id, SIGNALS_SHOWN), job.log)
    return dashboard.renderer.page(
        request,
        "job.html",
        now=jobs.clock(),
        job=job,
        kind="workflow" if job.workflow_slug else "task",
        steps=present.timeline(job.log),
        children=children,
        signals=signals,
        actions=ACTIONS_BY_STATUS.get(job.status, ()),
        extras=_extras(job),
    )


def _extras(job: Job) -> list[tuple[str, Any]]:
    """Fields later versions add to ``Job``, shown when present."""
    names = ("priority", "idempotency_key", "parent_id")
    return [
        (name, present.field(job, name)) for name in names if present.field(job, name) is not None
    ]


@dataclass(frozen=True)
class ScheduleRow:
    slug: str
    kind: str
    cron: str
    queue: str
    timezone: str
    last: datetime | None
    next: datetime | None


async def schedules(dashboard: Dashboard, request: Request) -> Response:
    jobs = dashboard.jobs
    now = jobs.clock()
    items = collect(jobs, queue=DEFAULT_QUEUE, all_queues=True)
    last = await queries(jobs).schedule_ticks([item.key for item in items])
    rows = [
        ScheduleRow(
            slug=item.definition.slug,
            kind=item.kind,
            cron=item.schedule.cron,
            queue=item.schedule.queue,
            timezone=str(getattr(item.schedule, "timezone", "UTC")),
            last=last.get(item.key),
            next=_next_tick(item.schedule.cron, now),
        )
        for item in items
    ]
    entries: list[AutoRun] | None = None if callable(jobs.auto_run) else list(jobs.auto_run)
    return dashboard.renderer.page(request, "schedules.html", now=now, rows=rows, entries=entries)


def _next_tick(expression: str, now: datetime) -> datetime | None:
    try:
        return cron.parse(expression).next_after(now)
    except ValueError:  # pragma: no cover - checked when the Schedule was made
        return None
