"""``GET /metrics`` (Prometheus text format) and ``GET /health`` of the endpoints app."""

from __future__ import annotations

import shutil
import sys
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

import asyncjobs
from tests.conftest import (
    FakeClock,
    _admin,
    _postgres_server_url,
    _with_database,
    run_until_idle,
)

MakeJobs = Callable[..., asyncjobs.Jobs]
SECRET = "s3cret-for-monitoring"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@asyncjobs.task("report")
async def report(*, input: dict) -> None:
    if input.get("fail"):
        raise KeyError("path")


async def get(jobs: asyncjobs.Jobs, path: str, **kwargs: Any) -> httpx.Response:
    transport = httpx.ASGITransport(app=jobs.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get(path, **kwargs)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, as ``prometheus_client``'s own parser reads it."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def test_metrics_count_jobs_by_queue_and_status_and_this_process_finished_ones(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[report], secret=SECRET)
    queue = f"scraped-{uuid.uuid4().hex[:8]}"  # finished counts are this process's, all tests
    await jobs.queue_many([{"task": "report", "queue": queue}] * 2)
    await jobs.queue(task="report", input={"fail": True}, queue=queue)
    await run_until_idle(jobs, queue=queue)
    await jobs.queue_many([{"task": "report", "queue": queue}] * 3)
    await jobs.queue(task="report", queue=queue, wait_until=clock() + timedelta(minutes=5))
    clock.advance(90)

    response = await get(jobs, "/metrics", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    assert found[("asyncjobs_jobs", (("queue", queue), ("status", "queued")))] == 3
    assert found[("asyncjobs_jobs", (("queue", queue), ("status", "waiting")))] == 1
    assert found[("asyncjobs_jobs", (("queue", queue), ("status", "processing")))] == 0
    assert found[("asyncjobs_oldest_runnable_job_age_seconds", (("queue", queue),))] == 90
    labels = (("queue", queue), ("slug", "report"), ("status", "completed"))
    assert found[("asyncjobs_jobs_finished_total", labels)] == 2
    assert found[("asyncjobs_job_duration_seconds_count", labels)] == 2
    failed = (("queue", queue), ("slug", "report"), ("status", "failed"))
    assert found[("asyncjobs_jobs_finished_total", failed)] == 1


async def test_metrics_need_the_credentials_of_run(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[report], secret=SECRET)
    response = await get(jobs, "/metrics")
    assert response.status_code == 401


async def test_metrics_without_prometheus_client_say_what_to_install(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "asyncjobs.prometheus", None)  # as if not installed
    monkeypatch.delattr(asyncjobs, "prometheus", raising=False)
    jobs = make_jobs(tasks=[report], secret=SECRET)
    response = await get(jobs, "/metrics", headers=AUTH)
    assert response.status_code == 501
    assert "pip install 'asyncjobs[prometheus]'" in response.json()["message"]


async def test_health_needs_no_credentials_and_says_only_ok(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[report], secret=SECRET)
    await jobs.start()
    response = await get(jobs, "/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_health_with_credentials_adds_the_autorun_details(
    make_jobs: MakeJobs, backend: str
) -> None:
    jobs = make_jobs(tasks=[report], secret=SECRET, auto_run=[asyncjobs.AutoRun(queue="health")])
    await jobs.start()
    await jobs.queue(task="report", queue="health")  # wakes the entry: a tick at least
    body = (await get(jobs, "/health", headers=AUTH)).json()
    assert body["status"] == "ok"
    details = body["details"]
    assert details["database"] == ("sqlite" if backend == "sqlite" else "postgresql")
    (entry,) = details["autoRun"]
    assert entry["queue"] == "health" and entry["cron"] == "* * * * *"
    assert 0 <= entry["lastTickAgeSeconds"] < 30
    assert details["listener"] in ("off", "connecting", "listening")


async def test_health_answers_405_to_a_post(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[report])
    transport = httpx.ASGITransport(app=jobs.asgi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        response = await http.post("/health")
    assert response.status_code == 405


async def test_health_is_503_when_the_sqlite_folder_is_gone(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'jobs.db'}"
    async with asyncjobs.Jobs(tasks=[report], database_url=url, auto_run=[]) as jobs:
        assert (await get(jobs, "/health")).status_code == 200
        shutil.rmtree(folder)
        response = await get(jobs, "/health")
        assert (response.status_code, response.json()) == (503, {"status": "unavailable"})


@pytest.mark.postgres
async def test_health_is_503_when_postgresql_refuses_connections() -> None:
    server = _postgres_server_url()
    if server is None:
        pytest.skip("PostgreSQL tests skipped: set ASYNCJOBS_TEST_POSTGRES_URL to run them")
    name = f"asyncjobs_gone_{uuid.uuid4().hex[:10]}"
    await _admin(server, f'CREATE DATABASE "{name}"')
    try:
        jobs = asyncjobs.Jobs(
            tasks=[report], database_url=_with_database(server, name), auto_run=[]
        )
        await jobs.start()
        try:
            assert (await get(jobs, "/health")).status_code == 200
            await _admin(server, f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await _admin(
                server,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'",
            )
            response = await get(jobs, "/health")
            assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
        finally:
            await jobs.stop(timeout=1)
    finally:
        await _admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
