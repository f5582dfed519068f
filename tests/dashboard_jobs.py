"""Definitions the browser and framework tests share with the servers they start.

The servers import this module (settings from the environment) and so do the tests, which
queue and run jobs on the same database themselves.
"""

from __future__ import annotations

import os
from typing import Any

import asyncjobs

SECRET = "browser-s3cret"
PREFIX = "/admin/jobs"  # where the framework apps of dashboard_servers.py mount the dashboard
DATABASE_ENV = "ASYNCJOBS_DATABASE_URL"


@asyncjobs.task("send-email")
async def send_email(*, input: dict[str, Any]) -> dict[str, Any]:
    if input.get("fail"):
        raise ConnectionError("mail server not answering")
    return {"sent_to": input.get("to")}


@asyncjobs.task("resize-image")
async def resize_image(*, input: dict[str, Any]) -> dict[str, Any]:
    return {"width": 120, "height": 80}


async def charge(*, input: dict[str, Any]) -> None:
    raise ValueError(f"card declined for order {input['order']}")


@asyncjobs.workflow("onboard-user", queue="onboarding")
async def onboard_user(*, input: dict[str, Any], tasks: Any, inline_task: Any) -> None:
    await tasks["send-email"]("welcome", input={"to": input["email"]})
    await tasks["resize-image"]("avatar", input={"url": "ada.png"})
    await inline_task("charge", task=charge, input={"order": 7})


@asyncjobs.workflow("review", queue="onboarding")
async def review(*, run_child: Any, wait_for_signal: Any) -> dict[str, Any]:
    await run_child("mail", task="send-email", input={"to": "ada@example.com"})
    return {"approved": await wait_for_signal("approval", "approve")}


@asyncjobs.task("tidy-up", schedule=asyncjobs.Schedule("*/5 * * * *"))
async def tidy_up() -> None:
    return None


def make_jobs(database_url: str | None = None) -> asyncjobs.Jobs:
    """No autoRun: the tests decide what runs, so the pages show the states they set up."""
    return asyncjobs.Jobs(
        tasks=[send_email, resize_image, tidy_up],
        workflows=[onboard_user, review],
        database_url=database_url or os.environ.get(DATABASE_ENV),
        secret=SECRET,
        auto_run=[],
        delete_job_on_complete=False,
    )


jobs = make_jobs()
app = jobs.dashboard_app()  # served alone; it starts and stops jobs on the lifespan
