"""``asyncjobs dashboard``: the dashboard of an app's jobs, served on its own."""

from __future__ import annotations

import argparse
import secrets
import sys

from asyncjobs.cli.loading import database_jobs, opened
from asyncjobs.cli.render import Style, out
from asyncjobs.cli.serve import listen, run_server, uvicorn_server
from asyncjobs.jobs import Jobs


async def main(args: argparse.Namespace) -> int:
    """Serve the dashboard until interrupted; this process runs no jobs itself."""
    server_type = uvicorn_server("asyncjobs dashboard")
    jobs = database_jobs(args.app, args.database_url)
    password = _password(jobs)
    sock = listen(args.host, args.port)
    host, port = sock.getsockname()[:2]
    style = Style(sys.stdout)
    out(f"Dashboard on {style.bold(f'http://{host}:{port}/')}")
    if password:
        out(f"  user: any, password: {password} (made for this run: the app sets no secret)")
    out("Ctrl-C to stop.")
    async with opened(jobs):
        await run_server(server_type, jobs.dashboard_app(), sock, lifespan="off")
    return 0


def _password(jobs: Jobs) -> str | None:
    """A password for this run when the app has neither a secret nor ``Access.dashboard``."""
    if jobs.secret or (jobs.access is not None and jobs.access.dashboard is not None):
        return None
    password = secrets.token_urlsafe(12)
    jobs.secret = password
    return password
