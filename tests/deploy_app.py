"""A Starlette app for the deploy and shutdown tests, served by uvicorn in its own process.

``record`` writes one row per run into ``deploy_effects`` (PostgreSQL), tagged with this
instance's ``DEPLOY_INSTANCE``, so a test counts real executions instead of trusting job
states; ``nap`` sleeps ``input["seconds"]`` so a test can stop the server mid-job.
"""

from __future__ import annotations

import os
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asyncjobs
from asyncjobs.integrations.starlette import lifespan, mount

INSTANCE = os.environ.get("DEPLOY_INSTANCE", "unnamed")
EFFECTS_TABLE = "deploy_effects"


def effects_dsn() -> str:
    url = os.environ["ASYNCJOBS_DATABASE_URL"]
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@asyncjobs.task("record")
async def record(*, job: asyncjobs.Job) -> dict[str, str]:
    import asyncpg

    conn = await asyncpg.connect(effects_dsn())
    try:
        await conn.execute(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, instance) VALUES ($1, $2)", job.id, INSTANCE
        )
    finally:
        await conn.close()
    return {"instance": INSTANCE}


@asyncjobs.task("nap")
async def nap(*, input: dict[str, Any]) -> dict[str, float]:
    await anyio.sleep(float(input["seconds"]))
    return {"slept": float(input["seconds"])}


def auto_run_enabled(jobs: asyncjobs.Jobs) -> bool:
    return os.environ.get("ASYNCJOBS_AUTO_RUN", "1") == "1"


jobs = asyncjobs.Jobs(
    tasks=[record, nap],
    secret=os.environ.get("ASYNCJOBS_SECRET"),
    auto_run=[asyncjobs.AutoRun(cron="* * * * * *", limit=25)],
    should_auto_run=auto_run_enabled,
    delete_job_on_complete=False,
)


async def queue_job(request: Request) -> JSONResponse:
    job = await request.app.state.jobs.queue(
        task=request.path_params["slug"], input=await request.json()
    )
    return JSONResponse({"id": job.id, "instance": INSTANCE}, status_code=202)


async def show_job(request: Request) -> JSONResponse:
    job = await request.app.state.jobs.get(request.path_params["id"])
    if job is None:
        return JSONResponse({"error": "no such job"}, status_code=404)
    return JSONResponse({"id": job.id, "status": job.status})


app = Starlette(
    routes=[
        Route("/queue/{slug}", queue_job, methods=["POST"]),
        Route("/jobs/{id:int}", show_job),
        mount(jobs),
    ],
    # DEPLOY_STOP_TIMEOUT: the seconds running jobs get at shutdown (the default otherwise).
    lifespan=lifespan(
        jobs, **({"stop_timeout": float(s)} if (s := os.environ.get("DEPLOY_STOP_TIMEOUT")) else {})
    ),
)
