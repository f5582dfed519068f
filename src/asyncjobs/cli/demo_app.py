"""The web app ``asyncjobs demo --serve`` runs: the demo's jobs, a route, the endpoints and the
dashboard, in one Starlette app that ships inside the package.

::

    POST /onboard?name=Ada     queue the onboard-user workflow       -> 202 {"id": 1, ...}
    GET  /status/1             its status and step log (JSON)
    GET  /api/jobs/run         the endpoints (Authorization: Bearer <secret>)
    GET  /jobs                 the dashboard (HTTP Basic, password <secret>)
"""

from __future__ import annotations

from typing import Any, cast

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asyncjobs
from asyncjobs.cli.demo import USER, Narrator, build, queue_demo_jobs
from asyncjobs.integrations.starlette import lifespan, mount, mount_dashboard

SERVE_TIDY_CRON = "*/20 * * * * *"  # a scheduled job every 20 seconds keeps the charts moving


def make_app(database_url: str, secret: str, say: Narrator) -> Starlette:
    """The demo app on ``database_url``; the demo's jobs are queued when it starts."""

    @asyncjobs.task("sync-crm")
    async def sync_crm(*, input: dict[str, Any], job: asyncjobs.Job) -> None:
        say.say(job.id, "sync-crm", "the CRM did not answer: fails for good (no retries)")
        raise TimeoutError(f"the CRM did not answer for user {input['user_id']}")

    jobs = build(
        database_url, say, tidy_cron=SERVE_TIDY_CRON, secret=secret, extra_tasks=[sync_crm]
    )

    async def queue_onboarding(request: Request) -> JSONResponse:
        name = request.query_params.get("name", USER["name"])
        job = await jobs.queue(workflow="onboard-user", input={**USER, "name": name})
        return JSONResponse({"id": job.id, "status": job.status}, status_code=202)

    async def show_status(request: Request) -> JSONResponse:
        job = await jobs.get(request.path_params["id"])
        if job is None:
            return JSONResponse({"error": "no such job"}, status_code=404)
        return JSONResponse(_describe(job))

    async def started(app: Starlette) -> Any:
        await queue_demo_jobs(jobs, say)
        await jobs.queue(task="sync-crm", input=USER)
        yield

    return Starlette(
        routes=[
            Route("/onboard", queue_onboarding, methods=["POST"]),
            Route("/status/{id:int}", show_status),
            mount(jobs),
            mount_dashboard(jobs),
        ],
        lifespan=cast(Any, lifespan(jobs, started)),
    )


def _describe(job: asyncjobs.Job) -> dict[str, Any]:
    log = [
        entry.model_dump(mode="json", include={"task_slug", "task_id", "state"})
        for entry in job.log
    ]
    return {"id": job.id, "status": job.status, "log": log}
