"""Shared fixtures: one storage suite over SQLite and PostgreSQL, an injected clock, factories."""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import asyncjobs

POSTGRES_ENV = "ASYNCJOBS_TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "ASYNCJOBS_REQUIRE_POSTGRES"
T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)  # a Monday


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float = 0, **kwargs: float) -> datetime:
        self.now += timedelta(seconds=seconds, **kwargs)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# -- databases ---------------------------------------------------------------------------


def _postgres_server_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database on the test server for this session, dropped at the end."""
    server = _postgres_server_url()
    if server is None:
        if os.environ.get(REQUIRE_POSTGRES_ENV):
            pytest.fail(f"{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_ENV} is not")
        pytest.skip(f"PostgreSQL tests skipped: set {POSTGRES_ENV} to run them")
    name = f"asyncjobs_test_{uuid.uuid4().hex[:10]}"
    _in_thread(_admin(server, f'CREATE DATABASE "{name}"'))
    try:
        yield _with_database(server, name)
    finally:
        _in_thread(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _in_thread(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` on a fresh loop: the fixture may be set up from inside a running one."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def _with_database(server: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def _admin(server: str, sql: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    url = make_url(server)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database or "postgres",
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _truncate(url: str) -> None:
    import asyncpg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    conn = await asyncpg.connect(
        host=u.host, port=u.port or 5432, user=u.username, password=u.password, database=u.database
    )
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables"
            " WHERE schemaname = 'public' AND tablename LIKE 'asyncjobs_%'"
        )
        if tables:
            names = ", ".join(t["tablename"] for t in tables)
            await conn.execute(f"TRUNCATE {names} RESTART IDENTITY")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of the parametrized backend."""
    if backend == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}"
    url = str(request.getfixturevalue("postgres_database"))
    await _truncate(url)
    return url


@pytest.fixture
async def make_jobs(
    database_url: str, clock: FakeClock
) -> AsyncIterator[Callable[..., asyncjobs.Jobs]]:
    """Build started-on-demand ``Jobs`` on the test database; all are stopped at teardown."""
    made: list[asyncjobs.Jobs] = []

    def make(*, tasks: Any = (), workflows: Any = (), **options: Any) -> asyncjobs.Jobs:
        options.setdefault("database_url", database_url)
        options.setdefault("clock", clock)
        options.setdefault("auto_run", [])
        options.setdefault("delete_job_on_complete", False)
        jobs = asyncjobs.Jobs(tasks=list(tasks), workflows=list(workflows), **options)
        made.append(jobs)
        return jobs

    yield make
    for jobs in made:
        await jobs.stop(timeout=5)


async def run_until_idle(
    jobs: asyncjobs.Jobs, *, rounds: int = 50, **options: Any
) -> list[asyncjobs.RunResult]:
    """Call ``run()`` until it finds nothing runnable; returns every result."""
    results = []
    for _ in range(rounds):
        result = await jobs.run(**options)
        results.append(result)
        if result.no_jobs_remaining:
            return results
    raise AssertionError(f"queue not idle after {rounds} runs")


# -- telemetry ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _telemetry() -> Any:
    from tests.telemetry_support import install

    return install()


@pytest.fixture
def otel(_telemetry: Any) -> Any:
    """The session's OpenTelemetry SDK (``tests.telemetry_support.Telemetry``), spans cleared."""
    _telemetry.exporter.clear()
    return _telemetry
