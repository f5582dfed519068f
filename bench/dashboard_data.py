"""A million jobs for the dashboard benchmark, generated inside the database in one statement.

Over the last seven days, ids rising with ``created_at``, on three queues (60/30/10%) and seven
slugs: 97% completed, 2% failed, 1% cancelled; in the last two hours a backlog (60% queued, 5%
waiting an hour, 2% failed, the rest completed); the newest 50 jobs are processing.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import asyncpg
import sqlalchemy
from sqlalchemy.ext.asyncio import create_async_engine

SPAN = 7 * 24 * 3600.0  # seconds the jobs were created over
PROCESSING = 50
TASKS = ("send-email", "resize-image", "sync-crm", "charge-card")
WORKFLOWS = ("onboard-user", "nightly-report", "import-csv")
TRACEBACK = "Traceback (most recent call last):\\n" + '  File \\"app.py\\", line 1\\n' * 12
ERROR = (
    '{"name": "ConnectionError", "message": "mail server not answering", '
    f'"cancelled": false, "traceback": "{TRACEBACK}ConnectionError"}}'
)
CANCELLED = '{"name": "JobCancelled", "message": "cancelled", "cancelled": true}'

# One shape for both backends; {time} turns seconds-ago into the backend's timestamp.
KIND = """CASE WHEN i > {n} - {processing} THEN 'p'
    WHEN age < 7200 THEN CASE WHEN r < 600 THEN 'q' WHEN r < 650 THEN 'w'
                              WHEN r < 670 THEN 'f' ELSE 'c' END
    ELSE CASE WHEN r < 20 THEN 'f' WHEN r < 30 THEN 'x' ELSE 'c' END END"""
SLUG = "CASE i % 7 {whens} END"
QUEUE = "CASE WHEN i % 10 < 6 THEN 'default' WHEN i % 10 < 9 THEN 'emails' ELSE 'reports' END"

PG_INSERT = """
INSERT INTO asyncjobs_jobs (queue, task_slug, workflow_slug, input, meta, wait_until,
    processing_until, processing_token, completed_at, has_error, error, total_tried,
    created_at, updated_at)
SELECT {queue}, {task}, {workflow}, jsonb_build_object('n', i, 'to', 'user' || i || '@example.com'),
    '{{}}'::jsonb,
    CASE WHEN kind = 'w' THEN $1::timestamptz + interval '1 hour' END,
    CASE WHEN kind = 'p' THEN $1::timestamptz + interval '1 minute' END,
    CASE WHEN kind = 'p' THEN md5(i::text) END,
    CASE WHEN kind = 'c' THEN created + interval '2 seconds' END,
    kind IN ('f', 'x'),
    CASE WHEN kind = 'f' THEN '{error}'::jsonb WHEN kind = 'x' THEN '{cancelled}'::jsonb END,
    CASE WHEN kind IN ('f', 'c', 'p') THEN 1 ELSE 0 END,
    created,
    CASE WHEN kind IN ('f', 'x') THEN created + interval '5 seconds' ELSE created END
FROM generate_series(1, $2::int) AS i,
    LATERAL (SELECT ($2 - i) * $3::float8 AS age, (i::bigint * 7919) % 1000 AS r) AS a,
    LATERAL (SELECT $1::timestamptz - age * interval '1 second' AS created, {kind} AS kind) AS b
"""

SQLITE_INSERT = """
WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < :n),
a AS (SELECT i, (:n - i) * :step AS age, (i * 7919) % 1000 AS r FROM g),
b AS (SELECT i, age, r, {kind} AS kind,
         strftime('%Y-%m-%d %H:%M:%f', :now, '-' || age || ' seconds') || '000' AS created
      FROM a)
INSERT INTO asyncjobs_jobs (queue, task_slug, workflow_slug, input, meta, wait_until,
    processing_until, processing_token, completed_at, has_error, error, total_tried,
    created_at, updated_at)
SELECT {queue}, {task}, {workflow},
    json_object('n', i, 'to', 'user' || i || '@example.com'), '{{}}',
    CASE WHEN kind = 'w' THEN strftime('%Y-%m-%d %H:%M:%f', :now, '+1 hour') || '000' END,
    CASE WHEN kind = 'p' THEN strftime('%Y-%m-%d %H:%M:%f', :now, '+1 minute') || '000' END,
    CASE WHEN kind = 'p' THEN hex(randomblob(16)) END,
    CASE WHEN kind = 'c' THEN strftime('%Y-%m-%d %H:%M:%f', created, '+2 seconds') || '000' END,
    kind IN ('f', 'x'),
    CASE WHEN kind = 'f' THEN '{error}' WHEN kind = 'x' THEN '{cancelled}' END,
    CASE WHEN kind IN ('f', 'c', 'p') THEN 1 ELSE 0 END,
    created,
    CASE WHEN kind IN ('f', 'x')
         THEN strftime('%Y-%m-%d %H:%M:%f', created, '+5 seconds') || '000' ELSE created END
FROM b
"""


def _slug_case(names: tuple[str, ...], offset: int) -> str:
    whens = " ".join(f"WHEN {offset + k} THEN '{name}'" for k, name in enumerate(names))
    return SLUG.format(whens=whens)


def _statement(template: str, n: str) -> str:
    return template.format(
        queue=QUEUE,
        task=_slug_case(TASKS, 0),
        workflow=_slug_case(WORKFLOWS, len(TASKS)),
        kind=KIND.format(n=n, processing=PROCESSING),
        error=ERROR,
        cancelled=CANCELLED,
    )


async def fill_postgres(dsn: str, rows: int, now: datetime) -> float:
    """Insert ``rows`` jobs, then settle the table as a server that has run a while has it.

    A fresh bulk load leaves pages dirty and not yet all-visible (VACUUM cannot mark them
    while older transactions of other sessions run), which a long-running table is not.
    Returns the share of pages marked all-visible.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET synchronous_commit = off")
        await conn.execute(_statement(PG_INSERT, "$2"), now, rows, SPAN / rows)
        visible = 0.0
        for _ in range(SETTLE_TRIES):
            await conn.execute("VACUUM ANALYZE asyncjobs_jobs")
            await conn.execute("CHECKPOINT")
            visible = float(await conn.fetchval(_VISIBLE) or 0.0)
            if visible >= 0.99:
                break
            await asyncio.sleep(1)
        return visible
    finally:
        await conn.close()


SETTLE_TRIES = 10
_VISIBLE = (
    "SELECT relallvisible::float8 / greatest(relpages, 1) FROM pg_class "
    "WHERE relname = 'asyncjobs_jobs'"
)


async def fill_sqlite(url: str, rows: int, now: datetime) -> None:
    """Insert ``rows`` jobs and checkpoint the WAL (no ANALYZE: SQLite files rarely are)."""
    engine = create_async_engine(url)
    stamp = now.strftime("%Y-%m-%d %H:%M:%S.%f")
    try:
        async with engine.begin() as conn:
            await conn.execute(
                sqlalchemy.text(_statement(SQLITE_INSERT, ":n")),
                {"n": rows, "step": SPAN / rows, "now": stamp},
            )
        # A running app's WAL is checkpointed as it goes; a fresh load leaves it all unmerged.
        async with engine.connect() as conn:
            await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        await engine.dispose()
