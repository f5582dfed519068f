"""Pruning at scale: ``jobs.prune()`` deleting 1,000,000 finished jobs, with W5's lag probe.

    PYTHONPATH=src python bench/prune.py [--backend sqlite|postgres|both] [--rows N]

Fills the table with ``--rows`` finished jobs (as W6 does: every tenth failed) plus a small
backlog of queued jobs that must survive, then times one ``jobs.prune()`` with a retention of
0 for every kind while the host loop's lag is probed. On PostgreSQL it prints the plan of one
batch's DELETE first. Prints rows/s, the lag p99 and how many rows and queued jobs are left.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from datetime import UTC, datetime

import asyncpg
from bench_tasks import make_jobs
from databases import Database, Databases, driver_dsn
from measure import LagProbe
from sqlalchemy.dialects.postgresql import asyncpg as pg

import asyncjobs
from asyncjobs.retention import BATCH
from asyncjobs.storage.pruning import prune as prune_statement

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
KEEP_QUEUED = 1_000
NOTHING_KEPT = asyncjobs.Retention(completed=0, failed=0, cancelled=0)


async def measure(databases: Databases, backend: str, rows: int) -> dict[str, float]:
    db = await databases.make(backend, "prune")
    started = time.perf_counter()
    await db.driver.fill_finished(rows)
    await db.driver.fill_queued(KEEP_QUEUED)
    filled = time.perf_counter() - started
    if backend == "postgres":
        await explain(db)
    jobs = make_jobs(db.url, retention=NOTHING_KEPT)
    await jobs.start(auto_run=False)
    try:
        async with LagProbe.running() as probe:
            started = time.perf_counter()
            deleted = await jobs.prune()
            took = time.perf_counter() - started
        left = await jobs.find(limit=KEEP_QUEUED + 1)
    finally:
        await jobs.stop()
    return {
        "fill_s": filled,
        "deleted": deleted,
        "seconds": took,
        "rows_per_s": deleted / took,
        "lag_p99_ms": probe.p99_ms(),
        "left": len(left),
        "queued_left": sum(1 for job in left if job.status == "queued"),
    }


async def explain(db: Database) -> None:
    """The plan of one batch of each kind, with the real row counts (rolled back)."""
    conn = await asyncpg.connect(driver_dsn(db.url))
    try:
        for kind in ("completed", "failed"):
            statement = prune_statement(kind, datetime.now(UTC), BATCH)
            sql = statement.compile(dialect=pg.dialect(), compile_kwargs={"literal_binds": True})
            tx = conn.transaction()
            await tx.start()
            plan = await conn.fetch(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) {sql}")
            await tx.rollback()
            print(f"EXPLAIN ANALYZE, one batch of {kind} jobs:")
            for row in plan:
                print(f"  {row[0]}")
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--postgres-url", default=os.environ.get("ASYNCJOBS_BENCH_POSTGRES_URL", DEFAULT_POSTGRES)
    )
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    databases = Databases(args.postgres_url)
    try:
        for backend in backends:
            figures = await measure(databases, backend, args.rows)
            print(
                f"{backend}: pruned {figures['deleted']:,.0f} rows in {figures['seconds']:.1f} s"
                f" = {figures['rows_per_s']:,.0f} rows/s; host-loop lag p99"
                f" {figures['lag_p99_ms']:.1f} ms; left {figures['left']:.0f} rows"
                f" ({figures['queued_left']:.0f} queued); fill took {figures['fill_s']:.0f} s"
            )
    finally:
        await databases.close()


if __name__ == "__main__":
    asyncio.run(main())
