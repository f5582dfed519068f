"""Schedules: which cron tick each schedule proposes, its hooks, and enqueuing it once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Literal, Protocol

from asyncjobs import injection, logs
from asyncjobs.cron import parse
from asyncjobs.definitions import Schedule, Task, Workflow
from asyncjobs.errors import JobCancelled
from asyncjobs.models import Job, ScheduleResult, make_job
from asyncjobs.queueing import prepare_rows
from asyncjobs.storage import ScheduledTick

if TYPE_CHECKING:
    from asyncjobs.registry import Registry
    from asyncjobs.storage import Store

logger = logging.getLogger("asyncjobs.schedules")

Outcome = Literal["success", "skipped", "error"]
DECISION_KEYS = frozenset({"should_schedule", "input", "wait_until"})


class ScheduleHost(Protocol):
    """What handling schedules needs from its caller (``Jobs``), which hooks receive as
    ``jobs``."""

    @property
    def store(self) -> Store: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def clock(self) -> Callable[[], datetime]: ...


@dataclass(frozen=True)
class Scheduled:
    """One schedule of one task or workflow."""

    definition: Task | Workflow
    schedule: Schedule

    @property
    def kind(self) -> Literal["task", "workflow"]:
        return "task" if isinstance(self.definition, Task) else "workflow"

    @property
    def key(self) -> str:
        """Names the schedule's state row; it follows the cron, not the schedule's position."""
        return f"{self.schedule.queue}:{self.kind}:{self.definition.slug}:{self.schedule.cron}"

    def hook_args(self, jobs: ScheduleHost) -> dict[str, Any]:
        slug, queue = self.definition.slug, self.schedule.queue
        return {"jobs": jobs, "slug": slug, "queue": queue, "schedule": self.schedule}


async def handle_schedules(jobs: ScheduleHost, *, queue: str, all_queues: bool) -> ScheduleResult:
    """Propose one tick per schedule on ``queue`` (or every queue) and enqueue it at most once.

    Returns:
        ``(slug, queue)`` per schedule, sorted by outcome.
    """
    items = collect(jobs, queue=queue, all_queues=all_queues)
    if not items:
        return ScheduleResult()
    last = await jobs.store.last_ticks([item.key for item in items])
    outcomes: dict[Outcome, list[tuple[str, str]]] = {"success": [], "skipped": [], "error": []}
    for item in items:
        outcome = await schedule_tick(jobs, item, last.get(item.key))
        outcomes[outcome].append((item.definition.slug, item.schedule.queue))
    return ScheduleResult(
        queued=outcomes["success"], skipped=outcomes["skipped"], errored=outcomes["error"]
    )


def collect(jobs: ScheduleHost, *, queue: str, all_queues: bool) -> list[Scheduled]:
    """Every schedule whose jobs go to ``queue`` (all of them with ``all_queues``)."""
    return [
        Scheduled(definition, schedule)
        for definition in jobs.registry.all_definitions()
        for schedule in definition.schedule
        if all_queues or schedule.queue == queue
    ]


def propose(
    cron: str, last: datetime | None, now: datetime, zone: tzinfo | None = None
) -> datetime:
    """The first cron time after ``last`` (or ``now``); the latest one due if that is past.

    After downtime this yields one catch-up tick, not one per missed tick.
    """
    expr = parse(cron)
    tick = expr.next_after(last or now, zone)
    return expr.latest_not_after(now, zone) if tick < now else tick


async def schedule_tick(jobs: ScheduleHost, item: Scheduled, last: datetime | None) -> Outcome:
    """Ask ``before_schedule``, enqueue the tick unless taken, then tell ``after_schedule``."""
    args = item.hook_args(jobs)
    tick: datetime | None = None
    try:
        tick = propose(item.schedule.cron, last, jobs.clock(), item.schedule.zone)
        job = await _enqueue(jobs, item, tick, args)
    except JobCancelled:  # the hook cancelled the job before it existed: nothing to enqueue
        job = None
    except Exception as exc:
        logs.error(
            "Could not schedule %s %r on %r",
            item.kind,
            item.definition.slug,
            item.schedule.queue,
            extra=_extra(item, tick),
            exc=True,
            log=logger,
        )
        await _after(item, {**args, "status": "error", "job": None, "error": exc}, tick)
        return "error"
    outcome: Outcome = "skipped" if job is None else "success"
    await _after(item, {**args, "status": outcome, "job": job, "error": None}, tick)
    return outcome


async def _enqueue(
    jobs: ScheduleHost, item: Scheduled, tick: datetime, args: dict[str, Any]
) -> Job | None:
    decision, by_default = await _before(item, {**args, "wait_until": tick})
    if not decision.get("should_schedule", True):
        return None
    now = jobs.clock()
    entry = {
        item.kind: item.definition.slug,
        "input": decision.get("input"),
        "queue": item.schedule.queue,
        "wait_until": decision.get("wait_until", tick),
        "meta": {"scheduled": True},
    }
    rows, supersede = await prepare_rows(jobs.registry, [entry], now)
    stored = await jobs.store.enqueue_tick(
        ScheduledTick(
            key=item.key,
            tick=tick,
            now=now,
            rows=rows,
            supersede=supersede,
            only_if_idle=(item.definition.slug, item.schedule.queue) if by_default else None,
        )
    )
    if stored is None:
        return None
    created = [make_job(row, now) for row in stored]
    logs.info(
        "Scheduled job %s of %s %r",
        created[0].id,
        item.kind,
        item.definition.slug,
        extra={**_extra(item, tick), "job_id": created[0].id},
        log=logger,
    )
    # Not published on the wake bus: the autoRun tick that handles schedules runs jobs
    # next anyway, and a wake here would let a hook that schedules every call spin forever.
    return created[0]


async def default_before_schedule(
    *, jobs: ScheduleHost, slug: str, queue: str, wait_until: datetime, **_: Any
) -> dict[str, Any]:
    """Schedule unless a scheduled job of ``slug`` on ``queue`` is still unfinished.

    Unfinished means neither completed nor failed for good, so a job waiting to retry after
    an error still holds the next tick back. When this hook (called directly or awaited by a
    custom hook) says to schedule, the enqueue checks it again atomically, so instances
    proposing different ticks at once still enqueue one job.
    """
    count = await jobs.store.count_unfinished_scheduled(slug=slug, queue=queue)
    return {"should_schedule": count == 0, "input": {}, "wait_until": wait_until}


async def _before(item: Scheduled, args: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
    """The hook's decision, and whether the default hook's consent is part of it."""
    hook = item.schedule.before_schedule
    if hook is None:
        return await default_before_schedule(**args), True
    consented = False

    async def default(**kwargs: Any) -> dict[str, Any]:
        nonlocal consented
        decision = await default_before_schedule(**kwargs)
        consented = consented or decision["should_schedule"]
        return decision

    decision = _checked_decision(await injection.call(hook, {**args, "default": default}))
    return decision, consented


def _checked_decision(decision: Any) -> Mapping[str, Any]:
    if decision is None:
        return {}
    if not isinstance(decision, Mapping):
        raise TypeError(f"before_schedule must return a dict or None, got {decision!r}")
    unknown = sorted(set(decision) - DECISION_KEYS)
    if unknown:
        raise ValueError(
            f"before_schedule returned unknown key(s) {', '.join(unknown)}; "
            f"use {', '.join(sorted(DECISION_KEYS))}"
        )
    return decision


async def _after(item: Scheduled, args: dict[str, Any], tick: datetime | None) -> None:
    hook = item.schedule.after_schedule
    if hook is None:
        return
    try:
        await injection.call(hook, args)
    except Exception:
        # The outcome is already decided (and the job stored); a failing hook is only reported.
        logs.error(
            "after_schedule of %s %r raised",
            item.kind,
            item.definition.slug,
            extra=_extra(item, tick),
            exc=True,
            log=logger,
        )


def _extra(item: Scheduled, tick: datetime | None) -> dict[str, Any]:
    return {
        "slug": item.definition.slug,
        "queue": item.schedule.queue,
        "cron": item.schedule.cron,
        "tick": tick and tick.isoformat(),
    }
