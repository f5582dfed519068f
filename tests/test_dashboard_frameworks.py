"""The dashboard mounted in Starlette, Django and Quart, each under a real server."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

import asyncjobs
from tests.conftest import run_until_idle
from tests.dashboard_jobs import DATABASE_ENV, PREFIX, SECRET, make_jobs
from tests.servers import serve

pytestmark = pytest.mark.slow

APPS = {
    "starlette": ("tests.dashboard_servers:starlette_app", "uvicorn"),
    "django": ("tests.dashboard_servers:django_app", "uvicorn"),
    "quart": ("tests.dashboard_servers:quart_app", "hypercorn"),
}


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def jobs(database_url: str) -> AsyncIterator[asyncjobs.Jobs]:
    made = make_jobs(database_url)
    await made.start(auto_run=False)
    yield made
    await made.stop()


@pytest.mark.parametrize("framework", list(APPS))
async def test_the_mounted_dashboard_asks_for_the_password_shows_jobs_and_acts(
    framework: str, jobs: asyncjobs.Jobs, database_url: str, tmp_path: Path
) -> None:
    job = await jobs.queue(task="send-email", input={"fail": True})
    await run_until_idle(jobs)
    app, server_name = APPS[framework]
    env = {DATABASE_ENV: database_url}
    async with (
        serve(app, server=server_name, env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as anonymous,
        httpx.AsyncClient(base_url=server.url, timeout=10, auth=("a", SECRET)) as http,
    ):
        refused = await anonymous.get(f"{PREFIX}/")
        assert refused.status_code == 401, server.output()
        assert refused.headers["www-authenticate"].startswith("Basic ")

        page = await http.get(f"{PREFIX}/jobs/{job.id}")
        assert page.status_code == 200, server.output()
        assert "ConnectionError: mail server not answering" in page.text
        assert f'href="{PREFIX}/static/app.css?v=' in page.text
        assert (await http.get(f"{PREFIX}/static/app.css")).status_code == 200

        token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
        assert token
        retried = await http.post(
            f"{PREFIX}/jobs/{job.id}/retry", data={"csrf": token[1], "confirmed": "1"}
        )
        assert retried.status_code == 303, server.output()
        assert retried.headers["location"] == f"{PREFIX}/jobs/{job.id}"
        assert "will run again" in (await http.get(retried.headers["location"])).text
        assert (await anonymous.get("/api/jobs/run")).status_code == 401  # the endpoints too
        assert await server.stop(), server.output()
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "queued"
