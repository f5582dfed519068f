"""Where a fault-injection run keeps its data, how it watches the drain, and the server it restarts.

SQLite: a jobs file and a ledger file in a private temporary folder. PostgreSQL: two databases
made on the server for this run (jobs, ledger) and dropped at the end. Nothing else is touched,
except that the restart mode restarts the whole local server, and always leaves it running.
"""

from __future__ import annotations

import asyncio
import shlex
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import faults_ledger
from databases import PostgresDatabase
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

FINISHED_COUNT = text(
    "SELECT count(*) FROM asyncjobs_jobs WHERE completed_at IS NOT NULL OR has_error"
)
READY_FOR = 120.0  # seconds the server may take to accept connections after a (re)start
POLL_EVERY = 0.02  # how often pg_isready asks during a restart


class SetupError(Exception):
    """The run cannot do what was asked here (say, restart a server it does not control)."""


@dataclass
class RunData:
    """The run's jobs database and ledger, removed by ``close()``."""

    backend: str
    folder: Path
    jobs_url: str
    ledger_url: str
    made: list[PostgresDatabase] = field(default_factory=list)

    async def close(self) -> None:
        for database in self.made:
            await database.close()
        shutil.rmtree(self.folder, ignore_errors=True)


async def make_data(backend: str, server_url: str) -> RunData:
    folder = Path(tempfile.mkdtemp(prefix="asyncjobs-faults-"))
    if backend == "sqlite":
        data = RunData(
            backend,
            folder,
            f"sqlite+aiosqlite:///{folder / 'jobs.db'}",
            f"sqlite:///{folder / 'ledger.db'}",
        )
    else:
        tag = uuid.uuid4().hex[:8]
        jobs, ledger = (
            PostgresDatabase(server_url, f"asyncjobs_faults_{tag}_{p}") for p in ("jobs", "ledger")
        )
        data = RunData(backend, folder, jobs.url, dsn(ledger.url))
        try:
            for database in (jobs, ledger):
                await database.create()
                data.made.append(database)
        except OSError as exc:
            await data.close()
            raise SetupError(f"cannot reach PostgreSQL at {make_url(server_url)!r}: {exc}") from exc
    await faults_ledger.create(data.ledger_url)
    return data


def dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as the DSN asyncpg takes."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class Progress:
    """Counts finished jobs with a fresh connection each time; ``None`` while unreachable."""

    def __init__(self, jobs_url: str) -> None:
        self.engine = create_async_engine(jobs_url, poolclass=NullPool)

    async def finished(self) -> int | None:
        try:
            with anyio.fail_after(10):
                async with self.engine.connect() as conn:
                    return int((await conn.execute(FINISHED_COUNT)).scalar_one())
        except Exception:
            return None

    async def close(self) -> None:
        await self.engine.dispose()


@dataclass(frozen=True)
class Outage:
    """One restart: when it was asked for, when the server refused, when it accepted again."""

    began: float
    down: float  # ``began`` when the outage was too short for ``pg_isready`` to see
    up: float


class Server:
    """The PostgreSQL server serving ``url``, restarted with ``pg_ctlcluster`` (the local
    cluster on that port) or with a command of the caller's."""

    def __init__(self, url: str, restart_command: str | None = None) -> None:
        parsed = make_url(url)
        self.host, self.port = parsed.host or "127.0.0.1", int(parsed.port or 5432)
        self.restart_argv = shlex.split(restart_command) if restart_command else []
        self.start_argv: list[str] = []
        self.touched = False

    async def prepare(self) -> None:
        """Find how to restart the server; ``SetupError`` when we cannot."""
        if self.restart_argv:
            return
        if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
            raise SetupError(
                "restart mode needs pg_ctlcluster (a PostgreSQL server on this machine)"
                " or --restart-command"
            )
        _, out = await _command("pg_lsclusters", "-h")
        for line in out.splitlines():
            version, name, port, *_ = [*line.split(), "", "", ""]
            if port == str(self.port):
                ctl = ["pg_ctlcluster", "--skip-systemctl-redirect", version, name]
                self.restart_argv, self.start_argv = [*ctl, "restart"], [*ctl, "start"]
                return
        raise SetupError(f"no local PostgreSQL cluster listens on port {self.port}")

    async def ready(self) -> bool:
        argv = ["pg_isready", "-q", "-t", "1", "-h", self.host, "-p", str(self.port)]
        code, _ = await _command(*argv)
        return code == 0

    async def wait_ready(self) -> float:
        """Poll ``pg_isready`` until the server accepts connections; returns that time."""
        with anyio.fail_after(READY_FOR):
            while not await self.ready():  # noqa: ASYNC110 - another process; no event to await
                await anyio.sleep(POLL_EVERY)
        return time.time()

    async def restart(self) -> Outage:
        """Restart the server and watch it go down and come back."""
        began, seen, done = time.time(), {}, anyio.Event()
        self.touched = True
        with anyio.fail_after(READY_FOR):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch, seen, done)
                await _checked(self.restart_argv)
                done.set()
        return Outage(began, seen.get("down", began), seen["up"])

    async def _watch(self, seen: dict[str, float], done: anyio.Event) -> None:
        """Note when the server first refuses, then when it accepts again (or, if the outage
        was too short to see, when it accepts after the restart command returned)."""
        while True:
            ready, now = await self.ready(), time.time()
            if not ready:
                seen.setdefault("down", now)
            elif "down" in seen or done.is_set():
                seen["up"] = now
                return
            await anyio.sleep(POLL_EVERY)

    async def ensure_up(self) -> None:
        """Start the server if a restart left it down (also after an error or an interrupt)."""
        if not self.touched or await self.ready():
            return
        if self.start_argv:
            await _command(*self.start_argv)  # may fail as "already running" if it was starting
        await self.wait_ready()


async def _checked(argv: list[str]) -> None:
    code, out = await _command(*argv)
    if code != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({code}): {out.strip()}")


async def _command(*argv: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")
