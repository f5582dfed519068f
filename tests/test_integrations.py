"""The example apps and adapters under real ASGI servers: autoRun, access, deploys, shutdown."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import asyncjobs
from tests.servers import ROOT, Server, serve, wait_until

pytestmark = pytest.mark.slow

SECRET = "integration-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}
FRAMEWORK_MODULES = ("starlette", "fastapi", "django", "quart", "uvicorn", "hypercorn", "werkzeug")


@dataclass(frozen=True)
class Example:
    app: str
    server: str = "uvicorn"
    queue_paths: tuple[str, ...] = ("/greetings",)


EXAMPLES = {
    "starlette": Example("integrations.starlette.app:app"),
    "fastapi": Example("integrations.fastapi.app:app"),
    "django": Example(
        "integrations.django.asgi:application", queue_paths=("/greetings", "/greetings-sync")
    ),
    "quart": Example("integrations.quart.app:app", server="hypercorn"),
}


def app_env(database_url: str, **extra: str) -> dict[str, str]:
    return {"ASYNCJOBS_DATABASE_URL": database_url, "ASYNCJOBS_SECRET": SECRET, **extra}


async def job_status(http: httpx.AsyncClient, job_id: int, status: str) -> Any:
    async def probe() -> Any:
        body = (await http.get(f"/jobs/{job_id}")).json()
        return body if body.get("status") == status else None

    return await wait_until(probe, what=f"job {job_id} to be {status}")


async def stored_jobs(database_url: str) -> list[asyncjobs.Job]:
    reader = asyncjobs.Jobs(database_url=database_url, auto_run=[])
    async with reader.lifespan(auto_run=False):
        return await reader.find(limit=1000, order="id")


# -- the example apps ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "backend"),
    [
        ("starlette", "sqlite"),
        ("fastapi", "sqlite"),
        ("quart", "sqlite"),
        ("django", "sqlite"),
        pytest.param("django", "postgres", marks=pytest.mark.postgres),
    ],
)
async def test_example_app_runs_a_queued_workflow_through_auto_run(
    example: str, database_url: str, tmp_path: Path
) -> None:
    spec = EXAMPLES[example]
    env = app_env(database_url)
    async with (
        serve(spec.app, server=spec.server, env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        for path in spec.queue_paths:
            queued = await http.post(path, params={"name": "Ada"})
            assert queued.status_code == 202, server.output()
            job = await job_status(http, queued.json()["id"], "completed")
            assert [(e["task_slug"], e["task_id"], e["state"]) for e in job["log"]] == [
                ("make-greeting", "make", "succeeded"),
                ("inline", "shout", "succeeded"),
            ]
            assert job["log"][1]["output"] == {"text": "HELLO, ADA!"}
            assert job["output"] == {"text": "HELLO, ADA!"}
        await check_endpoint_access(http)
        await check_bad_input(http, spec)
        assert await server.stop(), server.output()


async def check_endpoint_access(http: httpx.AsyncClient) -> None:
    refused = await http.get("/api/jobs/run")
    assert refused.status_code == 401
    assert (await http.get("/api/jobs/run", headers={"Authorization": "Bearer no"})).is_error
    allowed = await http.get("/api/jobs/run", params={"limit": "5"}, headers=AUTH)
    assert allowed.status_code == 200
    assert allowed.json() == {
        "message": "Success",
        "noJobsRemaining": True,
        "remainingJobsFromQueried": 0,
    }
    assert (await http.get("/api/jobs/run?limit=abc", headers=AUTH)).status_code == 400
    assert (await http.get("/api/jobs/handle-schedules", headers=AUTH)).status_code == 500


HOSTILE_QUERIES = (
    "limit=" + "9" * 4301,
    "queue=%00",
    "queue=" + "q" * 201,
    "allqueues=true",
    "Limit=abc",
    "silent=yes",
    "limit=5&limit=6",
)


async def check_bad_input(http: httpx.AsyncClient, spec: Example) -> None:
    """Malformed parameters and inputs get 400 naming the problem, never 500."""
    for query in HOSTILE_QUERIES:
        answer = await http.get(f"/api/jobs/run?{query}", headers=AUTH)
        assert answer.status_code == 400, (query, answer.text)
        assert "query parameter" in answer.json()["message"]
    for path in spec.queue_paths:
        answer = await http.post(path, params={"name": "a\x00b"})
        assert answer.status_code == 400, (path, answer.text)
        assert "NUL" in answer.json()["error"]
    for job_id in ("9" * 30, "9" * 5000):
        answer = await http.get(f"/jobs/{job_id}")
        assert 400 <= answer.status_code < 500, (job_id[:30], answer.text[:300])


# -- a deploy: two instances, one runner ----------------------------------------------------

EFFECTS_DDL = (
    "DROP TABLE IF EXISTS deploy_effects",
    "CREATE TABLE deploy_effects (id serial PRIMARY KEY, job_id int NOT NULL,"
    " instance text NOT NULL)",
)


async def pg_execute(database_url: str, *statements: str) -> list[Any]:
    import asyncpg

    from tests.deploy_app import EFFECTS_TABLE

    dsn = database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
        return list(await conn.fetch(f"SELECT job_id, instance FROM {EFFECTS_TABLE}"))
    finally:
        await conn.close()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.timeout(90)
async def test_two_instances_share_one_database_and_only_the_runner_runs(
    database_url: str, tmp_path: Path
) -> None:
    await pg_execute(database_url, *EFFECTS_DDL)
    runner_env = app_env(database_url, ASYNCJOBS_AUTO_RUN="1", DEPLOY_INSTANCE="runner")
    web_env = app_env(database_url, ASYNCJOBS_AUTO_RUN="0", DEPLOY_INSTANCE="web")
    app = "tests.deploy_app:app"
    async with (
        serve(app, env=runner_env, log_dir=tmp_path) as runner,
        serve(app, env=web_env, log_dir=tmp_path) as web,
    ):
        ids = await queue_through(runner, web, count=40)
        await wait_until(lambda: all_completed(database_url, ids), what="every job completed")
        assert await runner.stop(signal.SIGTERM), runner.output()
        assert await web.stop(signal.SIGINT), web.output()
    effects = await pg_execute(database_url)
    runs = Counter(row["job_id"] for row in effects)
    assert runs == Counter(dict.fromkeys(ids, 1)), "each job ran exactly once"
    assert {row["instance"] for row in effects} == {"runner"}
    assert [job.processing_until for job in await stored_jobs(database_url)] == [None] * len(ids)


async def queue_through(*servers: Server, count: int) -> list[int]:
    ids: list[int] = []
    clients = [httpx.AsyncClient(base_url=server.url, timeout=10) for server in servers]
    try:
        for n in range(count):
            answer = await clients[n % len(clients)].post("/queue/record", json={})
            assert answer.status_code == 202
            ids.append(answer.json()["id"])
    finally:
        for client in clients:
            await client.aclose()
    return ids


async def all_completed(database_url: str, ids: list[int]) -> bool:
    done = {job.id for job in await stored_jobs(database_url) if job.status == "completed"}
    return done >= set(ids)


# -- clean shutdown -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "sig", "backend"),
    [
        (1.0, signal.SIGTERM, "sqlite"),
        # Past the shutdown's grace period (1 s here, 10 s by default): handed back.
        pytest.param(3600.0, signal.SIGINT, "postgres", marks=pytest.mark.postgres),
    ],
)
@pytest.mark.timeout(60)
async def test_stopping_a_server_mid_job_finishes_or_hands_back_the_job(
    database_url: str, tmp_path: Path, seconds: float, sig: int
) -> None:
    env = app_env(database_url)
    if seconds >= 5:
        env["DEPLOY_STOP_TIMEOUT"] = "1"
    async with (
        serve("tests.deploy_app:app", env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        job_id = (await http.post("/queue/nap", json={"seconds": seconds})).json()["id"]
        await job_status(http, job_id, "processing")
        assert await server.stop(sig), server.output()
    (job,) = await stored_jobs(database_url)
    if seconds < 5:
        assert job.status == "completed"
    else:  # handed back: runnable by another instance at once, the try not counted
        assert (job.status, job.processing_until, job.total_tried) == ("queued", None, 0)


# -- no framework behind `import asyncjobs` -------------------------------------------------


def test_import_asyncjobs_imports_no_web_framework() -> None:
    code = (
        "import sys, asyncjobs, asyncjobs.http\n"
        "asyncjobs.Jobs(auto_run=[]).asgi_app()\n"
        f"print(sorted(m for m in {FRAMEWORK_MODULES!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT / "src")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
