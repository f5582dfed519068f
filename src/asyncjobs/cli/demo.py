"""``asyncjobs demo``: retries with backoff, a delayed, a scheduled and a cancelled job, live."""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio

import asyncjobs
from asyncjobs.cli.render import JOB_HEADERS, Style, job_rows, out, table, timeline
from asyncjobs.models import Job

DEADLINE = 12.0  # seconds; the demo normally ends after about three
POLL = 0.05
BACKOFF = 1.0
REMIND_AFTER = 2.0
TIDY_CRON = "*/2 * * * * *"
USER = {"user_id": 42, "name": "Ada", "email": "ada@example.com"}


class Narrator:
    """Prints what happens, with the seconds since the demo started."""

    def __init__(self, style: Style) -> None:
        self.style = style
        self.started = time.monotonic()

    def say(self, job_id: int | None, slug: str, text: str) -> None:
        elapsed = self.style.dim(f"+{time.monotonic() - self.started:.2f}s".rjust(7))
        who = f"job {job_id}" if job_id is not None else ""
        out(f"  {elapsed}  {who:<6}  {slug:<15}  {text}")


class Finished(logging.Handler):
    """Takes the library's log records: wakes the demo when a job finishes, prints nothing.

    The narration tells the story; the library's own log lines would interleave with it.
    """

    def __init__(self) -> None:
        super().__init__()
        self.event = anyio.Event()

    @classmethod
    def install(cls) -> Finished:
        handler = cls()
        logger = logging.getLogger("asyncjobs")
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False
        return handler

    def emit(self, record: logging.LogRecord) -> None:
        if hasattr(record, "job_id") and hasattr(record, "status"):
            self.event.set()

    async def wait(self) -> None:
        await self.event.wait()
        self.event = anyio.Event()


def build(
    database_url: str,
    say: Narrator,
    *,
    tidy_cron: str = TIDY_CRON,
    secret: str | None = None,
    extra_tasks: Sequence[asyncjobs.Task] = (),
) -> asyncjobs.Jobs:
    """The demo's tasks and workflow: what an app defines once, at import time."""

    @asyncjobs.task("fetch-profile")
    async def fetch_profile(*, input: dict[str, Any], job: Job) -> dict[str, Any]:
        say.say(job.id, "fetch-profile", f"loaded the profile of user {input['user_id']}")
        return {"name": input["name"], "email": input["email"]}

    welcome_retries = asyncjobs.Retries(
        attempts=2, backoff=asyncjobs.Backoff(type="fixed", delay=BACKOFF)
    )

    @asyncjobs.task("send-welcome", retries=welcome_retries)
    async def send_welcome(*, input: dict[str, Any], job: Job) -> dict[str, Any]:
        if not any(entry.task_slug == "send-welcome" for entry in job.log):
            say.say(
                job.id, "send-welcome", f"mail server not answering: fails, retry in {BACKOFF:g}s"
            )
            raise ConnectionError("mail server not answering")
        say.say(
            job.id, "send-welcome", "sent; fetch-profile was not run again (its output is kept)"
        )
        return {"sent_to": input["email"]}

    @asyncjobs.workflow("onboard-user")
    async def onboard_user(*, input: dict[str, Any], tasks: Any) -> None:
        profile = await tasks["fetch-profile"]("profile", input=input)
        await tasks["send-welcome"]("welcome", input=profile)

    @asyncjobs.task("send-reminder")
    async def send_reminder(*, input: dict[str, Any], job: Job) -> dict[str, Any]:
        say.say(job.id, "send-reminder", f"reminded {input['name']}; it waited for its wait_until")
        return {"reminded": input["name"]}

    @asyncjobs.task("send-newsletter")
    async def send_newsletter(*, job: Job) -> None:  # pragma: no cover - cancelled before it runs
        say.say(job.id, "send-newsletter", "sent (this should not happen: it was cancelled)")

    def scheduled(*, status: str, job: Job | None) -> None:
        if status == "success" and job is not None and job.wait_until is not None:
            say.say(job.id, "tidy-up", f"queued by its schedule for {job.wait_until:%H:%M:%S}")

    @asyncjobs.task("tidy-up", schedule=asyncjobs.Schedule(tidy_cron, after_schedule=scheduled))
    async def tidy_up(*, job: Job) -> dict[str, Any]:
        say.say(job.id, "tidy-up", "ran on its schedule: removed expired sessions")
        return {"removed": 3}

    return asyncjobs.Jobs(
        tasks=[fetch_profile, send_welcome, send_reminder, send_newsletter, tidy_up, *extra_tasks],
        workflows=[onboard_user],
        database_url=database_url,
        auto_run=[asyncjobs.AutoRun(cron="* * * * * *")],
        delete_job_on_complete=False,
        secret=secret,
    )


async def main(args: argparse.Namespace) -> int:
    style = Style(sys.stdout)
    finished = Finished.install()
    with tempfile.TemporaryDirectory(prefix="asyncjobs-demo-") as tmp:
        path = Path(tmp) / "demo.db"
        _intro(style, path)
        started = time.monotonic()
        say = Narrator(style)
        jobs = build(f"sqlite+aiosqlite:///{path}", say)
        async with jobs:
            await queue_demo_jobs(jobs, say)
            done = await _wait_until_done(jobs, finished)
            shown = await jobs.find(order="created_at")
        _results(style, shown)
        _outro(style, time.monotonic() - started, done)
    return 0 if done else 1


def _intro(style: Style, path: Path) -> None:
    out(style.bold("asyncjobs demo") + ": jobs running inside this process's own event loop.")
    out(f"Database: {path} (a temporary SQLite file)")
    out(f"The code: {Path(__file__)}")
    out("")
    out("autoRun runs due jobs every second, and at once when a job is queued.")
    out(f"The tidy-up task has a schedule: cron {TIDY_CRON!r} (every 2 seconds).")
    out("")
    out(style.bold("What happens"))


async def queue_demo_jobs(jobs: asyncjobs.Jobs, say: Narrator) -> None:
    now = jobs.clock()
    later = now + timedelta(hours=1)
    workflow, reminder, newsletter = await jobs.queue_many(
        [
            {"workflow": "onboard-user", "input": USER},
            {"task": "send-reminder", "input": USER, "wait_until": now + _secs(REMIND_AFTER)},
            {"task": "send-newsletter", "wait_until": later},
        ]
    )
    say.say(workflow.id, "onboard-user", "queued: fetch-profile, then send-welcome")
    say.say(
        reminder.id,
        "send-reminder",
        f"queued with wait_until {_hms(reminder.wait_until)} (in {REMIND_AFTER:g}s)",
    )
    say.say(newsletter.id, "send-newsletter", f"queued with wait_until {_hms(later)} ...")
    await jobs.cancel_by_id(newsletter.id)
    say.say(newsletter.id, "send-newsletter", "... and cancelled before it ran")


async def _wait_until_done(jobs: asyncjobs.Jobs, finished: Finished) -> bool:
    """Until the workflow, the reminder and one scheduled job completed (or the deadline)."""
    with anyio.move_on_after(DEADLINE):
        while not _done(await jobs.find(order="created_at")):
            await finished.wait()
        return True
    return False


def _done(found: list[Job]) -> bool:
    completed = {job.slug for job in found if job.status == "completed"}
    return {"onboard-user", "send-reminder", "tidy-up"} <= completed


def _results(style: Style, found: list[Job]) -> None:
    out("")
    out(style.bold("The jobs now"))
    for line in table(JOB_HEADERS, job_rows(found), style):
        out("  " + line)
    out("")
    out(style.bold("Their logs") + " (one line per step attempt, times in UTC)")
    for job in found:
        out(f"  job {job.id} {job.slug}: {style.status(job.status)}")
        lines = timeline(job.log, style, date=False) if job.log else ["  (no steps: it never ran)"]
        out("\n".join("  " + line for line in lines))


def _outro(style: Style, elapsed: float, finished: bool) -> None:
    out("")
    if not finished:
        out(f"The demo did not finish within {DEADLINE:g}s; the jobs above show how far it got.")
        return
    out(f"Done in {elapsed:.1f}s. Next:")
    out(
        "  asyncjobs demo --serve          a web app with autoRun, HTTP endpoints and the dashboard"
    )
    out("  asyncjobs run --app myapp:jobs  run your own app's due jobs (see asyncjobs --help)")


def _secs(value: float) -> timedelta:
    return timedelta(seconds=value)


def _hms(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%H:%M:%S}"
