"""Make the README's dashboard screenshots: an hour of jobs, then the pages in headless Chromium.

    PYTHONPATH=src:. python docs/screenshots.py [--scheme light|dark]

Needs Playwright and Debian's Chromium (see tests/browser.py). Writes docs/img/*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import socket
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import uvicorn

import asyncjobs
from tests.browser import ARGS, chromium

OUT = Path(__file__).resolve().parent / "img"
SECRET = "screenshots"


class Clock:
    """Starts an hour ago; handlers move it on to look busy."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC) - timedelta(minutes=60)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def definitions(clock: Clock) -> tuple[list[asyncjobs.Task], list[asyncjobs.Workflow]]:
    @asyncjobs.task("send-email", retries=1)
    async def send_email(*, input: dict[str, Any]) -> dict[str, Any]:
        clock.advance(0.42)
        if input.get("bounce"):
            raise ConnectionError("mail server not answering")
        return {"sent_to": input["to"]}

    @asyncjobs.task("create-account")
    async def create_account(*, input: dict[str, Any], tasks: Any) -> dict[str, Any]:
        clock.advance(0.18)
        await tasks["send-email"]("verify", input={"to": input["email"]})
        clock.advance(0.05)
        return {"account": 1042}

    @asyncjobs.task("resize-image")
    async def resize_image(*, input: dict[str, Any]) -> dict[str, Any]:
        clock.advance(1.3)
        return {"width": 320, "height": 240}

    async def charge_card(*, input: dict[str, Any]) -> None:
        clock.advance(0.8)
        raise ValueError(f"card declined for order {input['order']}")

    @asyncjobs.workflow("onboard-user", queue="onboarding")
    async def onboard_user(*, input: dict[str, Any], tasks: Any, inline_task: Any) -> None:
        await tasks["create-account"]("account", input=input)
        await tasks["resize-image"]("avatar", input={"url": input["avatar"]})
        if input.get("order"):
            await inline_task("charge", task=charge_card, input={"order": input["order"]})

    @asyncjobs.task("nightly-report", schedule=asyncjobs.Schedule("0 2 * * *", queue="reports"))
    async def nightly_report() -> None:
        clock.advance(12)

    tasks = [send_email, create_account, resize_image, nightly_report]
    return tasks, [onboard_user]


async def an_hour_of_jobs(url: str) -> int:
    clock = Clock()
    tasks, workflows = definitions(clock)
    jobs = asyncjobs.Jobs(
        tasks=tasks,
        workflows=workflows,
        database_url=url,
        clock=clock,
        auto_run=[],
        delete_job_on_complete=False,
    )
    start = datetime.now(UTC)
    async with jobs.lifespan(auto_run=False):
        for minute in range(60):
            clock.now = start - timedelta(minutes=60 - minute, seconds=-5)
            busy = 6 + int(5 * math.sin(minute / 6)) + minute % 4
            items = [
                {
                    "task": "send-email",
                    "input": {
                        "to": f"user{minute}-{n}@example.com",
                        "bounce": (minute * 7 + n) % 23 == 0,
                    },
                }
                for n in range(busy)
            ]
            items += [
                {"task": "resize-image", "input": {"url": f"img{minute}.png"}, "queue": "media"}
                for _ in range(minute % 3)
            ]
            if minute % 5 == 0:
                order = 7000 + minute if minute % 15 == 0 else None
                items.append(
                    {
                        "workflow": "onboard-user",
                        "input": {
                            "email": f"ada{minute}@example.com",
                            "avatar": "ada.png",
                            "order": order,
                        },
                    }
                )
            await jobs.queue_many(items)
            for queue in ("default", "media", "onboarding"):
                while not (await jobs.run(queue=queue, limit=50)).no_jobs_remaining:
                    pass
        clock.now = start
        found = await jobs.find(where={"workflow_slug": "onboard-user", "status": "failed"})
        failed_workflow = found[0].id

        backlog = [
            {"task": "send-email", "input": {"to": f"later{n}@example.com"}} for n in range(14)
        ]
        backlog += [
            {
                "task": "resize-image",
                "input": {"url": "big.png"},
                "queue": "media",
                "wait_until": clock() + timedelta(minutes=20),
            }
            for _ in range(4)
        ]
        await jobs.queue_many(backlog)
    return failed_workflow


async def shoot(url: str, failed: int, scheme: str) -> None:
    from playwright.async_api import async_playwright

    tasks, workflows = definitions(Clock())
    jobs = asyncjobs.Jobs(
        tasks=tasks, workflows=workflows, database_url=url, secret=SECRET, auto_run=[]
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(jobs.dashboard_app(), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
        await asyncio.sleep(0.05)
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium(), args=ARGS)
            context = await browser.new_context(
                http_credentials={"username": "admin", "password": SECRET},
                viewport={"width": 1200, "height": 760},
                color_scheme=scheme,
            )
            page = await context.new_page()
            base = f"http://127.0.0.1:{port}"
            await page.goto(base + "/")
            await page.wait_for_timeout(500)
            await page.screenshot(path=OUT / f"dashboard-overview-{scheme}.png")
            await page.goto(f"{base}/jobs/{failed}")
            await page.locator("details#traceback > summary").click()  # paths of this machine
            await page.locator(".timeline > .step").nth(1).locator("summary").click()
            await page.set_viewport_size({"width": 1200, "height": 1000})
            await page.evaluate("window.scrollTo(0, 0)")
            await page.wait_for_timeout(500)
            await page.screenshot(path=OUT / f"dashboard-job-{scheme}.png")
            await browser.close()
    finally:
        server.should_exit = True
        await serving


async def main(scheme: str) -> None:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{folder}/jobs.db"
        failed = await an_hour_of_jobs(url)
        await shoot(url, failed, scheme)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--scheme", choices=("light", "dark"), default="light")
    asyncio.run(main(parser.parse_args().scheme))
