"""Drain the same no-op jobs with pgqueuer and with asyncjobs, on one PostgreSQL server.

    pip install -e '.[bench]'
    PYTHONPATH=src python bench/peers.py [--jobs N] [--runs N] [--postgres-url URL] [--markdown]

Each run drains ``--jobs`` queued no-op jobs five ways, in an order that rotates from run to run:
pgqueuer's ``QueueManager`` in drain mode with ``batch_size`` 10 and 100, the bare asyncpg
claim-10/complete-10 loop, asyncjobs W1 (``run(limit=10)`` in a loop) and asyncjobs W8 (an idle
app with an autoRun entry of ``limit=10``, fed by one ``queue_many()`` call). It prints the
medians, every run's value, and the ratio of each asyncjobs figure to pgqueuer's (the median of
the per-run ratios). The run creates the database ``asyncjobs_bench_<id>_peers``, holding both
libraries' tables, and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import asyncpg
import machine
import report
from autorun_drains import w8_drain
from databases import Databases, PostgresDatabase, driver_dsn
from measure import Rate
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode
from report import FLOOR_10, Metric, Results
from run import DEFAULT_POSTGRES_URL, POSTGRES_ENV, say
from workloads import w1_drain

ENTRYPOINT = "noop"
BACKEND = "postgres"
PGQ_10 = "pgqueuer batch_size=10"
PGQ_100 = "pgqueuer batch_size=100"
W1_LABEL = "asyncjobs W1 run(limit=10) loop"
W8_LABEL = "asyncjobs W8 autoRun drain, limit=10"


def _ratio_at_least(bound: float) -> report.Check:
    return lambda _backend, _value, ratio: ratio >= bound


def _against(key: str, label: str, reference: str, ref_label: str, **target: Any) -> Metric:
    return Metric(
        key,
        f"{label}, vs {ref_label}",
        "jobs/s",
        reference=reference,
        reference_label=f"{ref_label}, same runs",
        backends=(BACKEND,),
        **target,
    )


METRICS: tuple[Metric, ...] = (
    Metric("pgq_10", f"{PGQ_10} drain", "jobs/s", backends=(BACKEND,)),
    Metric("pgq_100", f"{PGQ_100} drain", "jobs/s", backends=(BACKEND,)),
    Metric("floor_10", f"{FLOOR_10} (asyncpg, no library)", "jobs/s", backends=(BACKEND,)),
    _against("w1_10", W1_LABEL, "pgq_10", PGQ_10),
    _against("w1_10", W1_LABEL, "pgq_100", PGQ_100),
    _against("w8", W8_LABEL, "pgq_10", PGQ_10, target="≥ 150%", check=_ratio_at_least(1.5)),
    _against("w8", W8_LABEL, "pgq_100", PGQ_100),
    _against("w8", W8_LABEL, "floor_10", FLOOR_10, target="≥ 90%", check=_ratio_at_least(0.9)),
)


class Pgqueuer:
    """pgqueuer's tables in the benchmark database, filled and drained like asyncjobs' jobs."""

    def __init__(self, dsn: str, conn: asyncpg.Connection) -> None:
        self.dsn, self.conn = dsn, conn
        self.queries = Queries(AsyncpgDriver(conn))

    @classmethod
    async def install(cls, dsn: str) -> Pgqueuer:
        """Connect and create pgqueuer's schema with its own installer (``pgq install``)."""
        peer = cls(dsn, await asyncpg.connect(dsn))
        await peer.queries.install()
        return peer

    async def close(self) -> None:
        await self.conn.close()

    async def fill(self, n: int) -> None:
        """An empty queue and log, then ``n`` jobs in one call, then ANALYZE."""
        await self.conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
        await self.queries.enqueue([ENTRYPOINT] * n, [None] * n, [0] * n)
        await self.conn.execute("ANALYZE pgqueuer")

    async def drain(self, *, batch: int, n: int, cap: float) -> Rate:
        """A ``QueueManager`` on its own connection, in drain mode: it returns once the queue is
        empty, its jobs ended and its buffered status updates were written.

        Timed from its first dequeue, so its start-up checks of the schema are left out.
        """
        conn = await asyncpg.connect(self.dsn)
        queries = Queries(AsyncpgDriver(conn))
        manager, done = QueueManager(queries), 0

        @manager.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            nonlocal done
            done += 1

        first = _time_first_call(queries, "dequeue")
        stop = asyncio.get_running_loop().call_later(cap, manager.shutdown.set)
        try:
            await manager.run(batch_size=batch, mode=QueueExecutionMode.drain)
            ended = time.perf_counter()
        finally:
            stop.cancel()
            if not conn.is_closed():
                await conn.close()
        seconds = ended - first[0] if first else 0.0
        return Rate(done, seconds, complete=done >= n and seconds < cap)


def _time_first_call(target: Any, name: str) -> list[float]:
    """Wrap ``target.name`` so that the returned list gets the time of its first call."""
    calls: list[float] = []
    method = getattr(target, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        if not calls:
            calls.append(time.perf_counter())
        return await method(*args, **kwargs)

    setattr(target, name, timed)
    return calls


@dataclass
class Peers:
    """The contenders of one invocation, on one database."""

    db: PostgresDatabase
    pgq: Pgqueuer
    n: int
    cap: float

    async def pgq_10(self) -> Rate:
        await self.pgq.fill(self.n)
        return await self.pgq.drain(batch=10, n=self.n, cap=self.cap)

    async def pgq_100(self) -> Rate:
        await self.pgq.fill(self.n)
        return await self.pgq.drain(batch=100, n=self.n, cap=self.cap)

    async def floor_10(self) -> Rate:
        await self.db.reset()
        await self.db.driver.fill_queued(self.n)
        return await self.db.driver.claim_complete(limit=10, n=self.n, cap=self.cap)

    async def w1_10(self) -> Rate:
        return (await w1_drain(self.db, n=self.n, limit=10, cap=self.cap)).rate

    async def w8(self) -> Rate:
        return (await w8_drain(self.db, n=self.n, limit=10, cap=self.cap)).rate

    def contenders(self, index: int) -> list[tuple[str, Callable[[], Awaitable[Rate]]]]:
        """Every contender once, the order shifted by one each run."""
        named = [
            ("pgq_10", self.pgq_10),
            ("pgq_100", self.pgq_100),
            ("floor_10", self.floor_10),
            ("w1_10", self.w1_10),
            ("w8", self.w8),
        ]
        shift = index % len(named)
        return named[shift:] + named[:shift]


async def measure(args: argparse.Namespace) -> tuple[Results, dict[str, Any]]:
    databases = Databases(args.postgres_url)
    results, facts = Results(), {"load_before": os.getloadavg()}
    try:
        db = await databases.make(BACKEND, "peers")
        assert isinstance(db, PostgresDatabase)
        facts["postgres"] = await db.driver.server_version()
        pgq = await Pgqueuer.install(driver_dsn(db.url))
        try:
            peers = Peers(db, pgq, args.jobs, args.cap)
            for index in range(args.runs):
                for key, contender in peers.contenders(index):
                    rate = await contender()
                    results.add(BACKEND, key, rate.per_second, rate.complete)
                    capped = "" if rate.complete else f" (time cap: {rate.count:,} done)"
                    say(f"run {index + 1}/{args.runs} {key}: {rate.per_second:,.0f} jobs/s{capped}")
        finally:
            await pgq.close()
    finally:
        await databases.close()
    facts["load_after"] = os.getloadavg()
    return results, facts


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs per drain (10,000)")
    parser.add_argument("--runs", type=int, default=3, help="repetitions (median reported)")
    parser.add_argument("--cap", type=float, default=15.0, help="seconds one drain may take")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL,
        help=f"server to create the benchmark database on (env {POSTGRES_ENV})",
    )
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.jobs < 1:
        parser.error("--runs and --jobs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    started = time.perf_counter()
    results, facts = asyncio.run(measure(args))
    facts["seconds"] = time.perf_counter() - started
    found = report.rows(results, {}, {}, METRICS)
    print(machine.summary(facts, autorun=True), end="")
    print(f"pgqueuer {metadata.version('pgqueuer')}; {args.jobs:,} jobs, {args.runs} run(s)\n")
    print(report.markdown_table(found) if args.markdown else report.text_table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
