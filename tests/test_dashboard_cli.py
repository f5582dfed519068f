"""``asyncjobs dashboard``: the dashboard served on its own, until SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from asyncjobs.cli import main as cli_main
from tests.dashboard_jobs import DATABASE_ENV, SECRET
from tests.test_demo import ROOT, read_until

pytestmark = pytest.mark.slow


async def serve_dashboard(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[str, int, int, int | None]:
    """Start the command; the intro, the answers without and with the password, the exit code."""
    argv = [sys.executable, "-m", "asyncjobs", "dashboard", "--port", "0", *args]
    proc = await anyio.open_process(argv, cwd=cwd, env=env)
    try:
        assert proc.stdout is not None
        with anyio.fail_after(30):
            intro = await read_until(proc.stdout, "Ctrl-C to stop.\n")
        url = re.search(r"Dashboard on (http://127\.0\.0\.1:\d+)/", intro)
        password = re.search(r"password: (\S+)", intro)
        assert url, intro
        secret = password[1] if password else SECRET
        async with httpx.AsyncClient(base_url=url[1], trust_env=False) as http:
            refused = (await http.get("/")).status_code
            shown = (await http.get("/jobs", auth=("me", secret))).status_code
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(15):
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.aclose()
    return intro, refused, shown, code


async def test_the_dashboard_command_serves_an_apps_dashboard(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        DATABASE_ENV: f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
    }
    intro, refused, shown, code = await serve_dashboard(
        ["--app", "tests.dashboard_jobs:jobs"], env, ROOT
    )
    assert (refused, shown, code) == (401, 200, 0)
    assert "password" not in intro  # the app's own secret is the password


async def test_without_a_secret_the_command_makes_a_password_for_the_run(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    url = f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    intro, refused, shown, code = await serve_dashboard(["--database-url", url], env, tmp_path)
    assert "made for this run" in intro
    assert (refused, shown, code) == (401, 200, 0)


def test_the_dashboard_command_without_uvicorn_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert cli_main(["dashboard", "--database-url", "sqlite+aiosqlite:///:memory:"]) == 1
    assert capsys.readouterr().err == (
        "asyncjobs: error: asyncjobs dashboard needs Starlette, Jinja2 and uvicorn "
        "(uvicorn is missing): pip install 'asyncjobs[dashboard]'\n"
    )


def test_the_dashboard_command_checks_its_port(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["dashboard", "--port", "99999"]) == 2
    assert "expected a port number" in capsys.readouterr().err
