"""``asyncjobs demo``: the newcomer's first command finishes fast and shows what it promises."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from anyio.abc import ByteReceiveStream, Process

from asyncjobs.cli import main as cli_main

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def section(text: str, title: str) -> list[str]:
    return text.split(f"\n{title}")[1].split("\n\n")[0].splitlines()[1:]


@pytest.mark.timeout(30)
async def test_demo_shows_retry_delay_schedule_and_cancel_within_seconds(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.monotonic()
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncjobs", "demo"], cwd=tmp_path, env=env, check=False
    )
    elapsed = time.monotonic() - started
    out = result.stdout.decode()

    assert result.returncode == 0, result.stderr.decode()
    assert elapsed < 15
    assert result.stderr == b""
    statuses = {tuple(line.split()[1:3]) for line in section(out, "The jobs now")[1:]}
    assert {
        ("completed", "onboard-user"),
        ("completed", "send-reminder"),
        ("cancelled", "send-newsletter"),
        ("completed", "tidy-up"),
    } <= statuses
    workflow_log = out.split("job 1 onboard-user: completed\n")[1].split("\n  job ")[0]
    steps = [line.split()[1:4] for line in workflow_log.splitlines()]
    assert steps == [
        ["fetch-profile", "#profile", "succeeded"],
        ["send-welcome", "#welcome", "failed"],
        ["send-welcome", "#welcome", "succeeded"],
    ]
    assert "ConnectionError: mail server not answering" in workflow_log
    assert "... and cancelled before it ran" in out
    assert "queued by its schedule" in out
    assert list(tmp_path.iterdir()) == []  # nothing left behind


async def read_until(stream: ByteReceiveStream, marker: str) -> str:
    seen = ""
    while marker not in seen:
        seen += (await stream.receive()).decode()
    return seen


@pytest.mark.timeout(60)
async def test_demo_serve_keeps_the_demo_app_running_until_sigterm(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    intro, statuses, code = await _serve_demo(env, tmp_path)

    assert statuses == {
        "job": "completed",
        "without secret": 401,
        "with secret": 200,
        "dashboard without password": 401,
        "dashboard": 200,
    }
    assert code == 0
    database = re.search(r"Database: (\S+)", intro)
    assert database and not Path(database[1]).exists()


@pytest.mark.timeout(120)
async def test_demo_serve_works_from_an_installed_wheel(tmp_path: Path) -> None:
    """Built and unpacked as pip would: nothing of the source checkout is on the path."""
    source = tmp_path / "source"  # a copy, so the build leaves nothing in the checkout
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", source / "src", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    await anyio.run_process([*pip, "-w", str(wheels), str(source)], check=True)
    site = tmp_path / "site"
    (wheel,) = wheels.glob("asyncjobs-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    assert (site / "asyncjobs" / "dashboard" / "templates" / "job.html").is_file()
    assert (site / "asyncjobs" / "dashboard" / "static" / "app.js").is_file()
    # Not measured: coverage would count the copy's lines beside the checkout's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    env["PYTHONPATH"] = str(site)
    run_in = tmp_path / "elsewhere"
    run_in.mkdir()

    intro, statuses, code = await _serve_demo(env, run_in)

    assert str(site / "asyncjobs" / "cli" / "demo_app.py") in intro
    assert statuses["job"] == "completed" and statuses["dashboard"] == 200
    assert code == 0


async def _serve_demo(env: dict[str, str], cwd: Path) -> tuple[str, dict[str, Any], int | None]:
    argv = [sys.executable, "-m", "asyncjobs", "demo", "--serve", "--port", "0"]
    errors = cwd / "stderr.txt"
    with errors.open("wb") as stderr:
        proc = await anyio.open_process(argv, cwd=cwd, env=env, stderr=stderr)
        try:
            intro, statuses = await _use_the_app(proc)
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(15):
                code = await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.aclose()
    assert errors.read_text() == "", errors.read_text()
    errors.unlink()
    return intro, statuses, code


async def _use_the_app(proc: Process) -> tuple[str, dict[str, Any]]:
    assert proc.stdout is not None
    with anyio.fail_after(30):
        intro = await read_until(proc.stdout, "What happens\n")
        url = re.search(r"Serving on (http://127\.0\.0\.1:\d+)", intro)
        secret = re.search(r"Bearer (\S+)'", intro)
        assert url and secret, intro
        async with httpx.AsyncClient(base_url=url[1], trust_env=False) as client:
            queued = (await client.post("/onboard", params={"name": "Ada"})).json()
            while (status := (await client.get(f"/status/{queued['id']}")).json()["status"]) in (
                "queued",
                "processing",
                "waiting",
            ):
                await anyio.sleep(0.05)
            refused = await client.get("/api/jobs/run")
            auth = {"Authorization": f"Bearer {secret[1]}"}
            allowed = await client.get("/api/jobs/run", headers=auth)
            hidden = await client.get("/jobs/")
            shown = await client.get(f"/jobs/jobs/{queued['id']}", auth=("any", secret[1]))
    return intro, {
        "job": status,
        "without secret": refused.status_code,
        "with secret": allowed.status_code,
        "dashboard without password": hidden.status_code,
        "dashboard": shown.status_code,
    }


def test_demo_serve_without_uvicorn_is_a_one_line_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)

    code = cli_main(["demo", "--serve"])

    err = capsys.readouterr().err
    assert code == 1
    assert err == (
        "asyncjobs: error: demo --serve needs Starlette, Jinja2 and uvicorn (uvicorn is missing): "
        "pip install 'asyncjobs[dashboard]'\n"
    )


def test_demo_serve_on_a_busy_port_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        code = cli_main(["demo", "--serve", "--port", str(port)])

    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith(f"asyncjobs: error: cannot listen on 127.0.0.1:{port}: ")
    assert err.endswith("(try --port 0)\n") and err.count("\n") == 1
