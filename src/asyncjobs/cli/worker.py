"""The worker commands: ``run``, ``handle-schedules`` and ``exec``, once or on a cron."""

from __future__ import annotations

import argparse
import json
from collections.abc import Awaitable, Callable
from typing import Any

from asyncjobs.cli import progress
from asyncjobs.cli.errors import CliError
from asyncjobs.cli.loading import app_jobs, load_script, opened
from asyncjobs.cli.render import out
from asyncjobs.cli.repeat import Repeater
from asyncjobs.jobs import Jobs
from asyncjobs.models import RunResult, ScheduleResult

RESULT_NAMES = {
    "success": "succeeded",
    "error": "will retry",
    "error-reached-max-retries": "failed",
    "suspended": "suspended",
}


async def run(args: argparse.Namespace) -> int:
    jobs = app_jobs(args.app, "run")
    console = progress.configure()

    async def once() -> None:
        console.reset()
        schedules = await _schedules(jobs, args) if args.handle_schedules else None
        result = await jobs.run(queue=args.queue, limit=args.limit, all_queues=args.all_queues)
        console.finish()
        _report_run(result, schedules, args)
        if schedules is not None and args.cron is None:
            _fail_on_errored(schedules)

    return await _repeat(jobs, once, args)


async def handle_schedules(args: argparse.Namespace) -> int:
    jobs = app_jobs(args.app, "handle-schedules")
    progress.configure()

    async def once() -> None:
        result = await _schedules(jobs, args)
        if args.json:
            out(json.dumps(result.model_dump(mode="json")))
        else:
            out(_schedule_summary(result))
        if args.cron is None:  # repeating, the log says it and the next tick comes
            _fail_on_errored(result)

    return await _repeat(jobs, once, args)


async def exec_script(args: argparse.Namespace) -> int:
    jobs = app_jobs(args.app, "exec")
    main = load_script(args.script)
    progress.configure(live=False)

    async def once() -> None:
        await main(jobs)

    return await _repeat(jobs, once, args, cancellable=True)


async def _repeat(
    jobs: Jobs,
    once: Callable[[], Awaitable[None]],
    args: argparse.Namespace,
    cancellable: bool = False,
) -> int:
    """Open ``jobs`` and run ``once`` now, or on every tick of ``--cron`` until stopped."""
    repeater = Repeater(
        jobs, once, cron=args.cron, stop_timeout=args.stop_timeout, cancellable=cancellable
    )
    async with opened(jobs):
        await repeater.run()
    return 0


async def _schedules(jobs: Jobs, args: argparse.Namespace) -> ScheduleResult:
    return await jobs.handle_schedules(queue=args.queue, all_queues=args.all_queues)


def _fail_on_errored(result: ScheduleResult) -> None:
    if result.errored:
        count = len(result.errored)
        which = ", ".join(f"{slug} on {queue!r}" for slug, queue in result.errored)
        noun = "schedule" if count == 1 else "schedules"
        raise CliError(f"{count} {noun} errored: {which} (see the log above)")


def _report_run(
    result: RunResult, schedules: ScheduleResult | None, args: argparse.Namespace
) -> None:
    if args.json:
        data: dict[str, Any] = result.model_dump(mode="json")
        if schedules is not None:
            data["schedules"] = schedules.model_dump(mode="json")
        out(json.dumps(data))
        return
    if schedules is not None:
        out(_schedule_summary(schedules))
    out(_run_summary(result, "every queue" if args.all_queues else f"queue {args.queue!r}"))


def _run_summary(result: RunResult, where: str) -> str:
    if result.no_jobs_remaining:
        return f"No jobs to run on {where}."
    if not result.job_status:
        return f"No job finished on {where}: the running jobs were handed back."
    counts = {name: 0 for name in RESULT_NAMES.values()}
    for status in result.job_status.values():
        counts[RESULT_NAMES[status]] += 1
    details = ", ".join(f"{n} {name}" for name, n in counts.items() if n)
    plural = "" if len(result.job_status) == 1 else "s"
    line = f"Ran {len(result.job_status)} job{plural} on {where}: {details}."
    failed = [str(i) for i, s in result.job_status.items() if s == "error-reached-max-retries"]
    if failed:
        line += f" Failed for good: {', '.join(failed)} (see `asyncjobs jobs show ID`)."
    return line


def _schedule_summary(result: ScheduleResult) -> str:
    parts = []
    for name, pairs in (
        ("queued", result.queued),
        ("skipped", result.skipped),
        ("errored", result.errored),
    ):
        listed = ", ".join(f"{slug} on {queue!r}" for slug, queue in pairs)
        parts.append(f"{len(pairs)} {name}" + (f" ({listed})" if listed else ""))
    return "Schedules: " + "; ".join(parts) + "."
