"""The example Django project in its own processes: an ASGI server that runs Django tasks, a WSGI
server that cannot (and says so once), and workers started by ``manage.py`` or ``asyncjobs``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import ROOT, Server, free_port, serve, wait_ready, wait_until

pytestmark = pytest.mark.slow

MANAGE = str(ROOT / "integrations" / "django" / "manage.py")
SETTINGS = "integrations.django.settings"
WARNING = "was queued, but nothing in this process runs jobs"


def project_env(database_url: str, **extra: str) -> dict[str, str]:
    paths = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    return {**os.environ, "PYTHONPATH": paths, "ASYNCJOBS_DATABASE_URL": database_url, **extra}


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = run(MANAGE, *args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


async def order_status(http: httpx.AsyncClient, order: int) -> dict[str, Any]:
    answer = await http.get(f"/orders/{order}")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def place_order(http: httpx.AsyncClient, email: str) -> dict[str, Any]:
    answer = await http.post("/orders", data={"email": email, "item": "tea"})
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_an_asgi_server_runs_the_django_task_of_an_order(
    database_url: str, tmp_path: Path
) -> None:
    env = project_env(database_url)
    manage("migrate", "--verbosity", "0", env=env)
    async with (
        serve("integrations.django.asgi:application", env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        placed = await place_order(http, "ada@example.com")

        async def confirmed() -> Any:
            body = await order_status(http, placed["order"])
            # The view reads the order, then the task: a finish between the two reads shows a
            # finished task beside the order as it was a moment before.
            finished = body["task"]["status"] == "SUCCESSFUL" and body["confirmed"]
            return body if finished else None

        body = await wait_until(confirmed, what="the order's confirmation")
        assert body["confirmed"] is True
        assert body["task"] == {
            "id": placed["task"],
            "status": "SUCCESSFUL",
            "attempts": 1,
            "return_value": {"order": placed["order"], "to": "ada@example.com"},
        }
        login = await http.get("/admin/asyncjobs/job/")
        assert login.status_code == 302 and "/admin/login/" in login.headers["location"]
        assert await server.stop(), server.output()
    assert WARNING not in server.output()


async def sign_in_as_staff(http: httpx.AsyncClient, env: dict[str, str]) -> None:
    password = "staff-password-1"
    manage(
        "createsuperuser", "--noinput", "--username", "staff", "--email", "staff@example.com",
        env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
    )  # fmt: skip
    form = await http.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
    assert token is not None, form.text
    fields = {"username": "staff", "password": password, "csrfmiddlewaretoken": token[1]}
    signed_in = await http.post("/admin/login/?next=/admin/", data=fields)
    assert signed_in.status_code == 302, signed_in.text


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
async def test_staff_members_see_the_jobs_in_the_dashboard(
    database_url: str, tmp_path: Path
) -> None:
    env = project_env(database_url)
    manage("migrate", "--verbosity", "0", env=env)
    async with (
        serve("integrations.django.asgi:application", env=env, log_dir=tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        placed = await place_order(http, "ada@example.com")
        assert (await http.get("/dashboard/jobs")).status_code == 401  # not signed in
        await sign_in_as_staff(http, env)
        listed = await http.get("/dashboard/jobs")
        assert listed.status_code == 200, listed.text
        assert f'/dashboard/jobs/{placed["task"]}"' in listed.text
        assert await server.stop(), server.output()


def spawn_runserver(env: dict[str, str], log_dir: Path) -> Server:
    port = free_port()
    log = log_dir / f"runserver-{port}.log"
    with log.open("wb") as out:
        args = [sys.executable, MANAGE, "runserver", f"127.0.0.1:{port}", "--noreload"]
        proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=out, stderr=out)
    return Server(proc, port, log)


@asynccontextmanager
async def runserver(env: dict[str, str], log_dir: Path) -> AsyncIterator[Server]:
    """``manage.py runserver``: Django's own WSGI development server."""
    server = spawn_runserver(env, log_dir)
    try:
        await wait_ready(server)
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.timeout(90)
async def test_runserver_warns_once_and_a_worker_runs_the_jobs(
    database_url: str, tmp_path: Path
) -> None:
    env = project_env(database_url)
    manage("migrate", "--verbosity", "0", env=env)
    async with (
        runserver(env, tmp_path) as server,
        httpx.AsyncClient(base_url=server.url, timeout=10) as http,
    ):
        orders = [await place_order(http, f"{name}@example.com") for name in ("ada", "bo")]
        assert (await order_status(http, orders[0]["order"]))["task"]["status"] == "READY"
        assert server.output().count(WARNING) == 1, server.output()
        assert 'manage.py asyncjobs run --cron "* * * * *"' in server.output()
        # The plain command line, with Django set up from DJANGO_SETTINGS_MODULE.
        worker = run(
            "-m", "asyncjobs", "--app", "integrations.django.jobs:jobs", "run",
            env={**env, "DJANGO_SETTINGS_MODULE": SETTINGS},
        )  # fmt: skip
        assert worker.returncode == 0, worker.stderr
        assert "Ran 2 jobs on queue 'default': 2 succeeded." in worker.stdout
        for order in orders:
            body = await order_status(http, order["order"])
            assert (body["confirmed"], body["task"]["status"]) == (True, "SUCCESSFUL")
    listed = manage("asyncjobs", "jobs", "list", "--status", "completed", env=env)
    assert listed.stdout.count("django-task") == 2


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_manage_py_asyncjobs_runs_the_whole_command_line(database_url: str) -> None:
    env = project_env(database_url)
    manage("migrate", "--verbosity", "0", env=env)
    queued = manage("asyncjobs", "jobs", "queue", "count-unconfirmed-orders", "--json", env=env)
    assert '"status": "queued"' in queued.stdout
    ran = manage("asyncjobs", "run", "--json", env=env)
    assert '"success"' in ran.stdout
    bad = run(MANAGE, "asyncjobs", "jobs", "show", "0", env=env)
    assert bad.returncode != 0 and bad.stderr.startswith("asyncjobs: error:"), bad.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_the_command_line_without_django_settings_says_why_it_cannot_load(
    database_url: str,
) -> None:
    env = project_env(database_url)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = run("-m", "asyncjobs", "--app", "integrations.django.jobs:jobs", "jobs", "list", env=env)
    assert done.returncode == 1
    assert done.stderr.startswith("asyncjobs: error: cannot import app module"), done.stderr
    broken = run(
        "-m", "asyncjobs", "--app", "integrations.django.jobs:jobs", "jobs", "list",
        env={**env, "DJANGO_SETTINGS_MODULE": "no.such.settings"},
    )  # fmt: skip
    assert broken.returncode == 1
    assert "cannot set up Django (DJANGO_SETTINGS_MODULE=no.such.settings)" in broken.stderr


def test_the_integration_imports_django_only_when_used() -> None:
    code = "import sys, asyncjobs.integrations.django\nprint('django' in sys.modules)"
    done = run("-c", code, env=project_env("sqlite:///unused.db"))
    assert (done.returncode, done.stdout.strip()) == (0, "False"), done.stderr
