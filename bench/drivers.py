"""Bare-driver loops on the asyncjobs schema (aiosqlite, asyncpg): the floor figures are held to.

No SQLAlchemy and no asyncjobs here: each loop is what a hand-written worker would send, so the
ratio of an asyncjobs figure to its floor is the share of the database's own limit it reaches.
The same connection also fills tables fast for the other workloads.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite
import asyncpg
from measure import Deadline, Rate

LEASE = timedelta(seconds=60)
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "busy_timeout=30000")

_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_RUNNABLE = """completed_at IS NULL AND has_error = {false}
    AND (processing_until IS NULL OR processing_until <= {now})
    AND (wait_until IS NULL OR wait_until <= {now})
    AND queue = 'default'"""
_RETURNING = "RETURNING id, task_slug, workflow_slug, input, total_tried, log"
_COUNT_UNFINISHED = (
    "SELECT count(*) FROM asyncjobs_jobs WHERE completed_at IS NULL AND has_error = {false}"
)
_COLUMNS = (
    'queue, task_slug, input, meta, has_error, total_tried, "exclusive", created_at, updated_at'
)


def utcnow() -> datetime:
    return datetime.now(UTC)


def sqlite_time(value: datetime) -> str:
    """The text asyncjobs stores for a time on SQLite (naive UTC, microseconds)."""
    return value.astimezone(UTC).strftime(_SQLITE_TIME)


def backlog_start() -> datetime:
    """Queued jobs are created an hour ago, a microsecond apart, so they are due and ordered."""
    return utcnow() - timedelta(hours=1)


class SqliteDriver:
    """One aiosqlite connection in autocommit mode, with asyncjobs' pragmas."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, path: Path) -> SqliteDriver:
        conn = await aiosqlite.connect(path, isolation_level=None)
        for pragma in SQLITE_PRAGMAS:
            await conn.execute(f"PRAGMA {pragma}")
        return cls(conn)

    async def close(self) -> None:
        await self.conn.close()

    async def fill_queued(self, n: int) -> None:
        """``n`` runnable single-task ``noop`` jobs, in one statement."""
        await self._fill(n, finished=False)

    async def fill_finished(self, n: int) -> None:
        """``n`` finished jobs (every tenth failed), as a table that keeps its history holds."""
        await self._fill(n, finished=True)

    async def _fill(self, n: int, *, finished: bool) -> None:
        stamp = (
            "printf('%s.%06d', datetime(:base, '+' || (i / 1000000) || ' seconds'), i % 1000000)"
        )
        extra_cols, extra_vals = "", ""
        if finished:
            extra_cols = ", completed_at, error"
            extra_vals = (
                f", {stamp}, CASE WHEN i % 10 = 0 THEN "
                """'{"name": "Boom", "message": "boom", "cancelled": false}' END"""
            )
        failed = "(i % 10 = 0)" if finished else "0"
        sql = f"""
            WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n)
            INSERT INTO asyncjobs_jobs ({_COLUMNS}{extra_cols})
            SELECT 'default', 'noop', json_object('i', i), '{{}}', {failed}, {int(finished)}, 0,
                {stamp}, {stamp}{extra_vals}
            FROM g"""
        base = backlog_start().astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
        await self.conn.execute(sql, {"n": n, "base": base})

    async def delete_unfinished(self) -> None:
        await self.conn.execute(
            "DELETE FROM asyncjobs_jobs WHERE completed_at IS NULL AND has_error = 0"
        )

    async def vacuum(self) -> None:
        """Nothing to do: SQLite reuses the pages of deleted rows."""

    async def analyze(self) -> None:
        """Nothing to do: the SQLite floor and fills run without statistics too."""

    async def count(self) -> int:
        rows = list(await self.conn.execute_fetchall("SELECT count(*) FROM asyncjobs_jobs"))
        return int(rows[0][0])

    async def count_unfinished(self) -> int:
        rows = list(await self.conn.execute_fetchall(_COUNT_UNFINISHED.format(false="0")))
        return int(rows[0][0])

    async def claim_complete(self, *, limit: int, n: int, cap: float) -> Rate:
        """Claim ``limit`` jobs, complete them, repeat: one autocommit statement each."""
        claim = (
            "UPDATE asyncjobs_jobs SET processing_until = ?, processing_token = ?, updated_at = ?"
            " WHERE id IN (SELECT id FROM asyncjobs_jobs WHERE "
            + _RUNNABLE.format(false="0", now="?")
            + f" ORDER BY priority DESC, created_at, id LIMIT ?) {_RETURNING}"
        )
        complete = (
            "UPDATE asyncjobs_jobs SET completed_at = ?, processing_until = NULL,"
            " processing_token = NULL, total_tried = total_tried + 1, updated_at = ?"
            " WHERE id IN ({}) AND processing_token = ? AND processing_until > ?"
        )
        token, done, deadline = uuid.uuid4().hex, 0, Deadline(cap)
        while done < n and not deadline.passed:
            now = utcnow()
            at, until = sqlite_time(now), sqlite_time(now + LEASE)
            rows = await self.conn.execute_fetchall(claim, (until, token, at, at, at, limit))
            ids = [row[0] for row in rows]
            if not ids:
                break
            at = sqlite_time(utcnow())
            marks = ", ".join("?" * len(ids))
            await self.conn.execute(complete.format(marks), (at, at, *ids, token, at))
            done += len(ids)
        return Rate(done, deadline.elapsed(), complete=done >= n)

    async def insert_one(self, *, n: int, cap: float) -> Rate:
        """One ``INSERT ... RETURNING id`` per job."""
        sql = (
            f"INSERT INTO asyncjobs_jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, 0, 0, 0, ?, ?)"
            " RETURNING id"
        )
        done, deadline = 0, Deadline(cap)
        while done < n and not deadline.passed:
            at = sqlite_time(utcnow())
            params = ("default", "noop", json.dumps({"i": done}), "{}", at, at)
            await self.conn.execute_fetchall(sql, params)
            done += 1
        return Rate(done, deadline.elapsed(), complete=done >= n)

    async def insert_batch(self, *, n: int, batch: int, cap: float) -> Rate:
        """One multi-row ``INSERT ... RETURNING id`` per ``batch`` jobs."""
        row = "(?, ?, ?, ?, 0, 0, 0, ?, ?)"
        sql = (
            f"INSERT INTO asyncjobs_jobs ({_COLUMNS}) VALUES "
            + ", ".join([row] * batch)
            + " RETURNING id"
        )
        done, deadline = 0, Deadline(cap)
        while done < n and not deadline.passed:
            at = sqlite_time(utcnow())
            params: list[Any] = []
            for i in range(done, done + batch):
                params += ["default", "noop", json.dumps({"i": i}), "{}", at, at]
            await self.conn.execute_fetchall(sql, params)
            done += batch
        return Rate(done, deadline.elapsed(), complete=done >= n)


class PostgresDriver:
    """One asyncpg connection; asyncpg prepares and caches each statement itself."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    @classmethod
    async def open(cls, dsn: str) -> PostgresDriver:
        return cls(await asyncpg.connect(dsn))

    async def close(self) -> None:
        await self.conn.close()

    async def truncate(self) -> None:
        await self.conn.execute(
            "TRUNCATE asyncjobs_jobs, asyncjobs_schedules RESTART IDENTITY; ANALYZE asyncjobs_jobs"
        )

    async def fill_queued(self, n: int) -> None:
        """``n`` runnable single-task ``noop`` jobs, then ANALYZE as autovacuum eventually would."""
        await self.conn.execute(
            f"""INSERT INTO asyncjobs_jobs ({_COLUMNS})
            SELECT 'default', 'noop', jsonb_build_object('i', g), '{{}}'::jsonb, false, 0, false,
                $1::timestamptz + g * interval '1 microsecond', $1::timestamptz
            FROM generate_series(1, $2::int) AS g""",
            backlog_start(),
            n,
        )
        await self.conn.execute("ANALYZE asyncjobs_jobs")

    async def fill_finished(self, n: int) -> None:
        """``n`` finished jobs (every tenth failed), then VACUUM ANALYZE."""
        await self.conn.execute("SET synchronous_commit = off")
        await self.conn.execute(
            f"""INSERT INTO asyncjobs_jobs ({_COLUMNS}, completed_at, error)
            SELECT 'default', 'noop', jsonb_build_object('i', g), '{{}}'::jsonb, g % 10 = 0, 1,
                false, t, t, t,
                CASE WHEN g % 10 = 0 THEN
                    '{{"name": "Boom", "message": "boom", "cancelled": false}}'::jsonb END
            FROM generate_series(1, $2::int) AS g,
                LATERAL (SELECT $1::timestamptz + g * interval '1 microsecond' AS t) AS s""",
            backlog_start() - timedelta(days=1),
            n,
        )
        await self.conn.execute("RESET synchronous_commit")
        await self.vacuum()

    async def vacuum(self) -> None:
        await self.conn.execute("VACUUM ANALYZE asyncjobs_jobs")

    async def analyze(self) -> None:
        """Statistics for jobs queued by asyncjobs itself, as after ``fill_queued``."""
        await self.conn.execute("ANALYZE asyncjobs_jobs")

    async def delete_unfinished(self) -> None:
        await self.conn.execute(
            "DELETE FROM asyncjobs_jobs WHERE completed_at IS NULL AND has_error = false"
        )

    async def count(self) -> int:
        return int(await self.conn.fetchval("SELECT count(*) FROM asyncjobs_jobs"))

    async def count_unfinished(self) -> int:
        return int(await self.conn.fetchval(_COUNT_UNFINISHED.format(false="false")))

    async def server_version(self) -> str:
        return str(await self.conn.fetchval("SHOW server_version"))

    async def claim_complete(self, *, limit: int, n: int, cap: float) -> Rate:
        """Claim ``limit`` jobs (SKIP LOCKED), complete them, repeat: one round trip each."""
        claim = (
            "UPDATE asyncjobs_jobs SET processing_until = $1, processing_token = $2,"
            " updated_at = $3 WHERE id IN (SELECT id FROM asyncjobs_jobs WHERE "
            + _RUNNABLE.format(false="false", now="$3")
            + " ORDER BY priority DESC, created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)"
            + f" {_RETURNING}"
        )
        complete = (
            "UPDATE asyncjobs_jobs SET completed_at = $1, processing_until = NULL,"
            " processing_token = NULL, total_tried = total_tried + 1, updated_at = $1"
            " WHERE id = ANY($2::bigint[]) AND processing_token = $3 AND processing_until > $1"
        )
        token, done, deadline = uuid.uuid4().hex, 0, Deadline(cap)
        while done < n and not deadline.passed:
            now = utcnow()
            rows = await self.conn.fetch(claim, now + LEASE, token, now, limit)
            ids = [row[0] for row in rows]
            if not ids:
                break
            await self.conn.execute(complete, utcnow(), ids, token)
            done += len(ids)
        return Rate(done, deadline.elapsed(), complete=done >= n)

    async def insert_one(self, *, n: int, cap: float) -> Rate:
        """One ``INSERT ... RETURNING id`` per job."""
        sql = (
            f"INSERT INTO asyncjobs_jobs ({_COLUMNS})"
            " VALUES ($1, $2, $3::jsonb, $4::jsonb, false, 0, false, $5, $5) RETURNING id"
        )
        done, deadline = 0, Deadline(cap)
        while done < n and not deadline.passed:
            await self.conn.fetchval(
                sql, "default", "noop", json.dumps({"i": done}), "{}", utcnow()
            )
            done += 1
        return Rate(done, deadline.elapsed(), complete=done >= n)

    async def insert_batch(self, *, n: int, batch: int, cap: float) -> Rate:
        """One ``INSERT ... SELECT FROM unnest(...) RETURNING id`` per ``batch`` jobs."""
        sql = (
            f"INSERT INTO asyncjobs_jobs ({_COLUMNS})"
            " SELECT q, s, i, m, false, 0, false, $5, $5"
            " FROM unnest($1::text[], $2::text[], $3::jsonb[], $4::jsonb[]) AS t(q, s, i, m)"
            " RETURNING id"
        )
        done, deadline = 0, Deadline(cap)
        while done < n and not deadline.passed:
            inputs = [json.dumps({"i": i}) for i in range(done, done + batch)]
            await self.conn.fetch(
                sql, ["default"] * batch, ["noop"] * batch, inputs, ["{}"] * batch, utcnow()
            )
            done += batch
        return Rate(done, deadline.elapsed(), complete=done >= n)


Driver = SqliteDriver | PostgresDriver
