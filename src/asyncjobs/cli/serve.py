"""``asyncjobs demo --serve``: the Starlette example app with autoRun, on a temporary database."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import asyncjobs
from asyncjobs.cli import progress
from asyncjobs.cli.errors import CliError
from asyncjobs.cli.render import Style, out
from asyncjobs.jobs import DATABASE_URL_ENV

EXAMPLE = Path("integrations") / "starlette" / "app.py"
HOST = "127.0.0.1"
BACKLOG = 128
SECRET_ENV = "ASYNCJOBS_SECRET"
TIMERS_LOGGER = "asyncjobs.autorun.timers"


async def serve(args: argparse.Namespace) -> int:
    server_type = _uvicorn_server()
    example = find_example()
    secret = secrets.token_urlsafe(16)
    with tempfile.TemporaryDirectory(prefix="asyncjobs-demo-") as tmp:
        database = Path(tmp) / "demo.db"
        with _environment(
            {DATABASE_URL_ENV: f"sqlite+aiosqlite:///{database}", SECRET_ENV: secret}
        ):
            app = _load(example).app
        sock = _listen(args.port)
        url = f"http://{HOST}:{sock.getsockname()[1]}"
        _intro(Style(sys.stdout), example, database, url, secret)
        progress.configure(live=False)
        # APScheduler announces every timer it adds; the job lines are what the demo is about.
        logging.getLogger(TIMERS_LOGGER).setLevel(logging.WARNING)
        server = server_type(_config(app))
        with _signals_left_to_uvicorn():
            await server.serve(sockets=[sock])
    return 0


def _uvicorn_server() -> Any:
    try:
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise CliError(
            f"demo --serve needs Starlette and uvicorn ({exc.name} is missing): "
            "pip install 'asyncjobs[starlette]'"
        ) from None
    return uvicorn.Server


def _config(app: Any) -> Any:
    import uvicorn

    return uvicorn.Config(app, lifespan="on", log_level="info", access_log=True)


def find_example() -> Path:
    """The example app of a source checkout: next to the package, else in the cwd."""
    root = Path(asyncjobs.__file__).resolve().parents[2]
    for candidate in (root / EXAMPLE, Path.cwd() / EXAMPLE):
        if candidate.is_file():
            return candidate
    raise CliError(
        f"cannot find the Starlette example app ({EXAMPLE}); it ships with the source "
        "repository: run this command from a checkout"
    )


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("asyncjobs_example_starlette_app", path)
    if spec is None or spec.loader is None:  # pragma: no cover - a .py file always has one
        raise CliError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    # The example reads its settings from the environment when imported.
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _listen(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {HOST}:{port}: {exc.strerror} (try --port 0)") from None
    # Listening now lets a client connect as soon as the URL is printed; uvicorn accepts later.
    sock.listen(BACKLOG)
    return sock


@contextmanager
def _signals_left_to_uvicorn() -> Iterator[None]:
    """uvicorn stops on SIGINT/SIGTERM, then re-raises the signal: let that one pass quietly."""
    signals = (signal.SIGINT, signal.SIGTERM)
    saved = {sig: signal.signal(sig, _ignore) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: object) -> None:
    """Installed only while uvicorn serves; uvicorn puts its own handler in front."""


def _intro(style: Style, example: Path, database: Path, url: str, secret: str) -> None:
    out(style.bold("asyncjobs demo --serve") + f": the Starlette example app, {example}")
    out(f"Database: {database} (a temporary SQLite file); autoRun runs due jobs every second.")
    out("")
    out(f"Serving on {style.bold(url)}  (Ctrl-C to stop)")
    out(f"  curl -X POST '{url}/greetings?name=Ada'    # queue a workflow")
    out(f"  curl {url}/jobs/1                          # its status and step log")
    out(f"  curl -H 'Authorization: Bearer {secret}' {url}/api/jobs/run")
    out("")
