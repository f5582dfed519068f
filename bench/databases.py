"""Private benchmark databases: fresh SQLite files, or PostgreSQL databases made for this run.

Every workload starts from an empty schema created by asyncjobs itself (``Store.open()``), so the
bare-driver floors run against the same tables and indexes. On PostgreSQL the run creates its
own databases and drops them at the end; nothing else on the server is touched.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
from drivers import PostgresDriver, SqliteDriver
from sqlalchemy.engine import make_url

from asyncjobs.storage import store_for


async def create_schema(url: str) -> None:
    store = store_for(url)
    await store.open()
    await store.close()


class SqliteDatabase:
    """A new database file per ``reset()``, in a private temporary folder."""

    backend = "sqlite"

    def __init__(self, folder: Path, name: str) -> None:
        self.folder, self.name = folder, name
        self.path = folder / f"{name}.db"
        self._count = 0
        self._driver: SqliteDriver | None = None

    @property
    def url(self) -> str:
        return f"sqlite+aiosqlite:///{self.path}"

    @property
    def driver(self) -> SqliteDriver:
        assert self._driver is not None, "reset() first"
        return self._driver

    async def reset(self) -> None:
        await self._close_driver()
        _remove(self.path)
        self._count += 1
        self.path = self.folder / f"{self.name}-{self._count}.db"
        await create_schema(self.url)
        self._driver = await SqliteDriver.open(self.path)

    async def _close_driver(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.close()

    async def close(self) -> None:
        await self._close_driver()


class PostgresDatabase:
    """A database created on the server for this run; ``reset()`` empties its tables."""

    backend = "postgres"

    def __init__(self, server_url: str, name: str) -> None:
        self.server_url = server_url
        self.name = name
        self.url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
        self._driver: PostgresDriver | None = None

    @property
    def driver(self) -> PostgresDriver:
        assert self._driver is not None, "reset() first"
        return self._driver

    async def create(self) -> None:
        await _admin(self.server_url, f'CREATE DATABASE "{self.name}"')

    async def reset(self) -> None:
        if self._driver is None:
            await create_schema(self.url)
            self._driver = await PostgresDriver.open(driver_dsn(self.url))
        await self._driver.truncate()

    async def close(self) -> None:
        driver, self._driver = self._driver, None
        if driver is not None:
            await driver.close()
        await _admin(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


Database = SqliteDatabase | PostgresDatabase


class Databases:
    """Hands out the run's databases and removes them all at the end."""

    def __init__(self, postgres_url: str) -> None:
        self.postgres_url = postgres_url
        self.tag = uuid.uuid4().hex[:8]
        self.folder = Path(tempfile.mkdtemp(prefix="asyncjobs-bench-"))
        self._made: list[Database] = []

    async def make(self, backend: str, purpose: str) -> Database:
        name = f"asyncjobs_bench_{self.tag}_{purpose}"
        database: Database
        if backend == "sqlite":
            database = SqliteDatabase(self.folder, name)
        else:
            database = PostgresDatabase(self.postgres_url, name)
            await database.create()
        self._made.append(database)
        await database.reset()
        return database

    async def close(self) -> None:
        for database in self._made:
            await database.close()
        shutil.rmtree(self.folder, ignore_errors=True)


def _remove(path: Path) -> None:
    """A database file and its WAL companions: each workload starts from a new file."""
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def driver_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(server_url: str, sql: str) -> None:
    conn = await asyncpg.connect(driver_dsn(server_url))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
