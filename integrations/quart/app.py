"""asyncjobs in Quart: a route queues a workflow, autoRun runs it, another route shows it.

Run from the repository root::

    hypercorn integrations.quart.app:app

    curl -X POST 'localhost:8000/greetings?name=Ada'      # {"id": 1, "status": "queued"}
    curl localhost:8000/jobs/1                           # status, output and step log
    curl -H "Authorization: Bearer $ASYNCJOBS_SECRET" localhost:8000/api/jobs/run

Environment: ``ASYNCJOBS_DATABASE_URL`` (default ``sqlite+aiosqlite:///asyncjobs.db``),
``ASYNCJOBS_SECRET`` (the bearer secret of ``/api/jobs/*``), ``ASYNCJOBS_AUTO_RUN=0`` for an
instance that only serves and queues while another one runs the jobs.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel
from quart import Quart, request
from sqlalchemy import Column, Integer, MetaData, String, Table
from sqlalchemy.ext.asyncio import create_async_engine

import asyncjobs
from asyncjobs.integrations.quart import init_app


class Greeting(BaseModel):
    name: str


@asyncjobs.task("make-greeting", input_schema=Greeting, retries=2)
async def make_greeting(*, input: Greeting) -> dict[str, str]:
    return {"text": f"Hello, {input.name}!"}


async def shout(*, input: dict[str, str]) -> dict[str, str]:
    return {"text": input["text"].upper()}


@asyncjobs.workflow("greet", input_schema=Greeting)
async def greet(*, input: Greeting, tasks: Any, inline_task: Any) -> dict[str, Any]:
    greeting = await tasks["make-greeting"]("make", input={"name": input.name})
    return await inline_task("shout", task=shout, input=greeting)  # the job's output


def auto_run_enabled(jobs: asyncjobs.Jobs) -> bool:
    return os.environ.get("ASYNCJOBS_AUTO_RUN", "1").lower() not in ("0", "false", "no")


jobs = asyncjobs.Jobs(
    tasks=[make_greeting],
    workflows=[greet],
    secret=os.environ.get("ASYNCJOBS_SECRET"),
    auto_run=[asyncjobs.AutoRun(cron="* * * * * *")],  # every second, and at once on queue
    should_auto_run=auto_run_enabled,
    delete_job_on_complete=False,  # keep finished jobs so that /jobs/<id> can show them
)

# The app's own table lives in the same database, so a greeting and its job commit together.
metadata = MetaData()
greetings = Table(
    "greetings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False),
)
db = create_async_engine(jobs.database_url)

app = Quart(__name__)
init_app(app, jobs)  # start/stop with serving; GET /api/jobs/run, GET /api/jobs/handle-schedules


@app.before_serving
async def create_tables() -> None:
    async with db.begin() as conn:
        await conn.run_sync(metadata.create_all)


@app.after_serving
async def close_database() -> None:
    await db.dispose()


@app.errorhandler(ValueError)
async def bad_input(exc: ValueError) -> tuple[dict[str, Any], int]:
    # asyncjobs refuses bad input (an input it cannot store, an id beyond 64 bits) with a
    # ValueError naming the problem; asyncjobs.ValidationError is one.
    return {"error": str(exc)}, 400


@app.post("/greetings")
async def queue_greeting() -> tuple[dict[str, Any], int]:
    name = request.args.get("name", "world")
    async with db.begin() as conn:  # the greeting and its job commit together, or neither
        await conn.execute(greetings.insert().values(name=name))
        job = await jobs.queue(workflow="greet", input={"name": name}, connection=conn)
    return {"id": job.id, "status": job.status}, 202


@app.get("/jobs/<int:id>")
async def show_job(id: int) -> tuple[dict[str, Any], int]:
    job = await jobs.get(id)
    if job is None:
        return {"error": "no such job"}, 404
    log = [
        entry.model_dump(mode="json", include={"task_slug", "task_id", "state", "output"})
        for entry in job.log
    ]
    return {
        "id": job.id,
        "status": job.status,
        "input": job.input,
        "output": job.output,
        "log": log,
    }, 200
