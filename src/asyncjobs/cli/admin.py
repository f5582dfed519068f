"""The ``jobs`` commands (list, show, queue, cancel and retry jobs in the database) and
``prune``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from asyncjobs.cli.errors import CliError
from asyncjobs.cli.loading import app_jobs, database_jobs, opened
from asyncjobs.cli.render import (
    JOB_HEADERS,
    Style,
    job_detail,
    job_rows,
    out,
    table,
    to_json,
    when,
)
from asyncjobs.errors import AsyncJobsError
from asyncjobs.jobs import Jobs
from asyncjobs.models import Job
from asyncjobs.storage import missing_database


async def list_jobs(args: argparse.Namespace) -> int:
    where = {k: v for k, v in (("queue", args.queue), ("status", args.status)) if v is not None}
    async with _opened(args) as jobs:
        found = await jobs.find(where=where or None, limit=args.limit)
    if args.json:
        out(to_json([job.model_dump(mode="json") for job in found]))
    elif not found:
        out("No jobs" + (f" matching {_describe(where)}." if where else "."))
    else:
        for line in table(JOB_HEADERS, job_rows(found), Style(sys.stdout)):
            out(line)
    return 0


async def show_job(args: argparse.Namespace) -> int:
    async with _opened(args) as jobs:
        job = await _existing(jobs, args.id)
    if args.json:
        out(to_json(job.model_dump(mode="json")))
    else:
        for line in job_detail(job, Style(sys.stdout)):
            out(line)
    return 0


async def queue_job(args: argparse.Namespace) -> int:
    if args.database_url:
        raise CliError("'asyncjobs jobs queue' needs --app: the app's definitions check the input")
    jobs = app_jobs(args.app, "jobs queue")
    kind = _kind(jobs, args.slug)
    async with opened(jobs):
        try:
            job = await jobs.queue(
                **{kind: args.slug},
                input=args.input,
                queue=args.queue,
                wait_until=args.wait_until,
                priority=args.priority,
                idempotency_key=args.idempotency_key,
            )
        except (AsyncJobsError, ValueError, TypeError) as exc:
            raise CliError(" ".join(str(exc).split())) from None
    if args.json:
        out(to_json(job.model_dump(mode="json")))
    else:
        later = f", runs after {when(job.wait_until)} UTC" if job.status == "waiting" else ""
        out(f"Queued job {job.id}: {kind} {job.slug} on queue {job.queue!r}{later}.")
    return 0


async def prune(args: argparse.Namespace) -> int:
    if args.database_url:
        raise CliError("'asyncjobs prune' needs --app: the app's retention says what to delete")
    jobs = app_jobs(args.app, "prune")
    if jobs.retention is None:
        raise CliError(
            "the app has no retention configured: create its Jobs with "
            "retention=asyncjobs.Retention(completed=..., failed=..., cancelled=...)"
        )
    async with opened(jobs):
        deleted = await jobs.prune()
    noun = "job" if deleted == 1 else "jobs"
    _done(args, {"pruned": deleted}, f"Pruned {deleted} finished {noun}.")
    return 0


def _kind(jobs: Jobs, slug: str) -> str:
    if slug in jobs.tasks:
        return "task"
    if slug in jobs.workflows:
        return "workflow"
    known = ", ".join(sorted([*jobs.tasks, *jobs.workflows])) or "none"
    raise CliError(f"no task or workflow {slug!r} in the app (it has: {known})")


async def cancel_job(args: argparse.Namespace) -> int:
    refusal = "only unfinished jobs can be cancelled"
    job = await _act_on(args, "cancel_by_id", "is already {status}; " + refusal)
    _done(args, {"id": job.id, "cancelled": True}, f"Cancelled job {job.id}.")
    return 0


async def retry_job(args: argparse.Namespace) -> int:
    refusal = "only failed or cancelled jobs can be retried"
    job = await _act_on(args, "retry_by_id", "is {status}; " + refusal)
    steps = sum(1 for entry in job.log if entry.state == "succeeded")
    kept = f"; its {steps} succeeded step(s) will not run again" if steps else ""
    text = f"Job {job.id} is queued again{kept}."
    _done(args, {"id": job.id, "retried": True}, text)
    return 0


async def signal_job(args: argparse.Namespace) -> int:
    if args.payload is not None and not isinstance(args.payload, dict):
        raise CliError("--payload must be a JSON object")
    async with _opened(args) as jobs:
        job = await _existing(jobs, args.id)
        try:
            sent = await jobs.signal(job.id, args.topic, args.payload)
        except ValueError as exc:
            raise CliError(str(exc)) from None
        if not sent:
            raise CliError(
                f"job {job.id} is already {job.status}; only unfinished jobs take signals"
            )
    text = f"Sent signal {args.topic!r} to job {job.id}."
    _done(args, {"id": job.id, "topic": args.topic, "signalled": True}, text)
    return 0


async def _act_on(args: argparse.Namespace, action: str, refused: str) -> Job:
    """The job ``args.id`` names, after ``jobs.<action>(id)`` accepted it (else a CliError)."""
    async with _opened(args) as jobs:
        job = await _existing(jobs, args.id)
        if not await getattr(jobs, action)(job.id):
            raise CliError(f"job {job.id} " + refused.format(status=job.status))
    return job


@asynccontextmanager
async def _opened(args: argparse.Namespace) -> AsyncIterator[Jobs]:
    """The inspected ``Jobs``, opened without timers, for one command."""
    jobs = database_jobs(args.app, args.database_url)
    _check_database(jobs.database_url)
    async with opened(jobs):
        yield jobs


def _check_database(url: str) -> None:
    # Inspecting must not leave an empty database behind a mistyped path.
    missing = missing_database(url)
    if missing is not None:
        raise CliError(f"no database file at {missing}")


async def _existing(jobs: Jobs, job_id: int) -> Job:
    job = await jobs.get(job_id)
    if job is None:
        raise CliError(f"no job with id {job_id}")
    return job


def _done(args: argparse.Namespace, data: dict[str, Any], text: str) -> None:
    out(json.dumps(data) if args.json else text)


def _describe(where: dict[str, str]) -> str:
    return " and ".join(f"{key} {value!r}" for key, value in where.items())
