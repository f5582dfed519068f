"""Serving over HTTP from the command line: ``demo --serve`` and ``dashboard``."""

from __future__ import annotations

import argparse
import secrets
import signal
import socket
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from asyncjobs.cli.demo import Finished, Narrator, main
from asyncjobs.cli.errors import CliError
from asyncjobs.cli.render import Style, out

HOST = "127.0.0.1"
BACKLOG = 128


async def demo(args: argparse.Namespace) -> int:
    """``asyncjobs demo``: the story in the terminal, or with ``--serve`` the web app."""
    return await (serve(args) if args.serve else main(args))


async def serve(args: argparse.Namespace) -> int:
    """``demo --serve``: the demo app with autoRun, the endpoints and the dashboard."""
    server_type = uvicorn_server("demo --serve")
    from asyncjobs.cli.demo_app import make_app

    secret = secrets.token_urlsafe(16)
    style = Style(sys.stdout)
    Finished.install()  # the narration tells what happens; the library's log lines would repeat it
    with tempfile.TemporaryDirectory(prefix="asyncjobs-demo-") as tmp:
        database = Path(tmp) / "demo.db"
        app = make_app(f"sqlite+aiosqlite:///{database}", secret, Narrator(style))
        sock = listen(HOST, args.port)
        url = f"http://{HOST}:{sock.getsockname()[1]}"
        _intro(style, database, url, secret)
        await run_server(server_type, app, sock, lifespan="on")
    return 0


def uvicorn_server(command: str) -> Any:
    """uvicorn's ``Server`` class, once Starlette, Jinja2 and uvicorn are importable."""
    try:
        import jinja2  # noqa: F401
        import starlette  # noqa: F401
        import uvicorn
    except ImportError as exc:
        raise CliError(
            f"{command} needs Starlette, Jinja2 and uvicorn ({exc.name} is missing): "
            "pip install 'asyncjobs[dashboard]'"
        ) from None
    return uvicorn.Server


async def run_server(
    server_type: Any, app: Any, sock: socket.socket, *, lifespan: Literal["on", "off"]
) -> None:
    """Serve ``app`` on the listening ``sock`` until SIGINT or SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, lifespan=lifespan, log_level="warning", access_log=False)
    with _signals_left_to_uvicorn():
        await server_type(config).serve(sockets=[sock])


def listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise CliError(f"cannot listen on {host}:{port}: {exc.strerror} (try --port 0)") from None
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


def _intro(style: Style, database: Path, url: str, secret: str) -> None:
    out(style.bold("asyncjobs demo --serve") + ": a web app running its jobs in its own event loop")
    out(f"Database: {database} (a temporary SQLite file); autoRun runs due jobs every second.")
    out(f"The code: {Path(__file__).with_name('demo_app.py')}")
    out("")
    out(f"Serving on {style.bold(url)}  (Ctrl-C to stop)")
    out(f"  Dashboard: {style.bold(url + '/jobs/')}   user: any, password: {secret}")
    out(f"  curl -X POST '{url}/onboard?name=Ada'     # queue a workflow")
    out(f"  curl {url}/status/1                      # its status and step log")
    out(f"  curl -H 'Authorization: Bearer {secret}' {url}/api/jobs/run")
    out("")
    out(style.bold("What happens"))
