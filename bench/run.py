"""Benchmark asyncjobs against the database's own limit; prints a table, writes RESULTS.md.

    python bench/run.py [--quick] [--backend sqlite|postgres|both] [--runs N]
                        [--postgres-url URL]

It measures the asyncjobs that ``import asyncjobs`` finds (run it from a checkout with
``PYTHONPATH=src``, or after ``pip install -e .``). On PostgreSQL it creates its own databases
(``asyncjobs_bench_*``) and drops them at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import core_floor
import machine
import report
from autorun_drains import w7_mix, w8_drain
from autorun_workloads import autorun_available, w3_local, w3_processes, w4_idle
from databases import Database, Databases, PostgresDatabase
from measure import Drain, LagProbe, Latency, Rate
from workloads import (
    w1_drain,
    w1_processes,
    w2_queue,
    w2_queue_many,
    w6_drain,
    w6_setup,
    w9_drain,
)

HERE = Path(__file__).resolve().parent
POSTGRES_ENV = "ASYNCJOBS_BENCH_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
NO_AUTORUN = "n/a (autoRun not available)"
# W5 comes with W1 and W8, the floors with W1/W2; W8 and W9 measure their references too.
WORKLOADS = frozenset({"w1", "w2", "w3", "w4", "w6", "w7", "w8", "w9"})
AUTORUN_KEYS = {"w7": ("w7", "w7_over"), "w8": ("w8", "w5_w8")}


@dataclass
class Settings:
    """Sizes and time caps; ``--quick`` shrinks them to a smoke run."""

    backends: list[str]
    runs: int
    postgres_url: str
    out: Path
    only: frozenset[str] = WORKLOADS
    jobs: int = 10_000  # W1, W2 queue_many, W6, W8: jobs queued
    cap: float = 15.0  # seconds any one throughput measurement may take
    one_jobs: int = 2_000  # W2 queue(): jobs queued one by one
    batch: int = 100
    big_batch: int = 100  # W1 at a larger limit
    procs: int = 4
    samples: int = 200  # W3
    latency_cap: float = 20.0
    idle_seconds: float = 15.0  # W4
    lag_baseline: float = 2.0  # W5: seconds of an idle loop's lag, for comparison
    fast_jobs: int = 1_000  # W7: short jobs queued after one slow one
    fast_seconds: float = 0.01
    slow_seconds: float = 3.0
    workflow_jobs: int = 5_000  # W9
    scale_rows: dict[str, int] = field(
        default_factory=lambda: {"sqlite": 1_000_000, "postgres": 1_000_000}
    )


QUICK: dict[str, Any] = {
    "jobs": 1_000,
    "cap": 3.0,
    "one_jobs": 300,
    "samples": 30,
    "latency_cap": 5.0,
    "idle_seconds": 3.0,
    "lag_baseline": 0.5,
    "fast_jobs": 200,
    "slow_seconds": 1.0,
    "workflow_jobs": 500,
    "scale_rows": {"sqlite": 20_000, "postgres": 20_000},
}


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Bench:
    """Runs every workload on one backend per call and collects the figures."""

    def __init__(self, settings: Settings, databases: Databases) -> None:
        self.s = settings
        self.databases = databases
        self.results = report.Results()
        self.main: dict[str, Database] = {}
        self.scale: dict[str, Database] = {}
        self.setup_seconds: dict[str, float] = {}
        self.autorun = autorun_available()

    async def prepare(self, backend: str) -> None:
        """The run's databases, and the finished rows W6 drains over (filled once)."""
        self.main[backend] = await self.databases.make(backend, "main")
        if "w6" not in self.s.only:
            return
        scale = await self.databases.make(backend, "scale")
        say(f"{backend}: filling {self.s.scale_rows[backend]:,} finished jobs for W6")
        self.setup_seconds[backend] = await w6_setup(scale, self.s.scale_rows[backend])
        say(f"{backend}: filled in {self.setup_seconds[backend]:.1f} s")
        self.scale[backend] = scale

    async def run(self, backend: str, index: int) -> None:
        tag = f"run {index + 1}/{self.s.runs} {backend}"
        db, only = self.main[backend], self.s.only
        if "w1" in only:
            await self._drains(tag, backend, db)
        if "w2" in only:
            await self._enqueues(tag, backend, db)
        if "w1" in only and backend == "postgres":
            rate = await w1_processes(
                db, n=self.s.jobs, limit=10, cap=self.s.cap, procs=self.s.procs
            )
            self._rate(tag, backend, "w1_procs", rate)
        if "w3" in only:
            await self._latency(tag, backend, db)
        if "w6" in only:
            drain = await w6_drain(self.scale[backend], n=self.s.jobs, limit=10, cap=self.s.cap)
            self._rate(tag, backend, "w6", drain.rate)
        if "w1" not in only and only & {"w8", "w9"}:
            await self._drain_pair(tag, backend, db, 10)  # their references
        await self._autorun_drains(tag, backend, db)
        if "w9" in only:
            rate = await w9_drain(db, n=self.s.workflow_jobs, limit=10, cap=self.s.cap)
            self._rate(tag, backend, "w9", rate)
        if "w4" in only and index == 0:
            await self._idle(tag, backend, db)

    async def _drains(self, tag: str, backend: str, db: Database) -> None:
        s = self.s
        async with LagProbe.running() as idle:
            await asyncio.sleep(s.lag_baseline)
        self.results.add(backend, "w5_idle", idle.p99_ms())
        await self._drain_pair(tag, backend, db, 10)
        await self._drain_pair(tag, backend, db, s.big_batch, "100")
        await db.reset()
        await db.driver.fill_queued(s.jobs)
        core = await core_floor.claim_complete(db.url, limit=10, n=s.jobs, cap=s.cap)
        self._rate(tag, backend, "core_10", core)

    async def _drain_pair(
        self, tag: str, backend: str, db: Database, limit: int, suffix: str = "10"
    ) -> None:
        """The driver's claim/complete floor, then W1, on the same queue at the same limit."""
        s = self.s
        await db.reset()
        await db.driver.fill_queued(s.jobs)
        floor = await db.driver.claim_complete(limit=limit, n=s.jobs, cap=s.cap)
        self._rate(tag, backend, f"floor_{suffix}", floor)
        self._drain(tag, backend, suffix, await w1_drain(db, n=s.jobs, limit=limit, cap=s.cap))

    async def _autorun_drains(self, tag: str, backend: str, db: Database) -> None:
        """W7 and W8, which need the autoRun timers."""
        s, chosen = self.s, [w for w in ("w7", "w8") if w in self.s.only]
        if not self.autorun:
            for key in (k for w in chosen for k in AUTORUN_KEYS[w]):
                self.results.missing[backend, key] = NO_AUTORUN
            return
        if "w7" in chosen:
            mix = await w7_mix(
                db,
                fast_jobs=s.fast_jobs,
                fast_seconds=s.fast_seconds,
                slow_seconds=s.slow_seconds,
                limit=10,
                cap=s.cap + s.slow_seconds,
            )
            for key, value in (("w7", mix.seconds), ("w7_ideal", mix.ideal), ("w7_over", mix.over)):
                self.results.add(backend, key, value, mix.complete)
            say(f"{tag} w7: fast jobs done in {mix.seconds:.2f} s, {mix.over:.2f} s over ideal")
        if "w8" in chosen:
            drain = await w8_drain(db, n=s.jobs, limit=10, cap=s.cap)
            self._rate(tag, backend, "w8", drain.rate)
            self.results.add(backend, "w5_w8", drain.lag_p99_ms)

    async def _enqueues(self, tag: str, backend: str, db: Database) -> None:
        s = self.s
        await db.reset()
        self._rate(tag, backend, "floor_one", await db.driver.insert_one(n=s.one_jobs, cap=s.cap))
        self._rate(tag, backend, "w2_one", await w2_queue(db, n=s.one_jobs, cap=s.cap))
        await db.reset()
        floor = await db.driver.insert_batch(n=s.jobs, batch=s.batch, cap=s.cap)
        self._rate(tag, backend, "floor_many", floor)
        many = await w2_queue_many(db, n=s.jobs, batch=s.batch, cap=s.cap)
        self._rate(tag, backend, "w2_many", many)

    async def _latency(self, tag: str, backend: str, db: Database) -> None:
        keys = ["w3_p50", "w3_p99"] + (["w3x_p50", "w3x_p99"] if backend == "postgres" else [])
        if not self.autorun:
            for key in keys:
                self.results.missing[backend, key] = NO_AUTORUN
            return
        samples, cap = self.s.samples, self.s.latency_cap
        self._latencies(tag, backend, "w3", await w3_local(db, samples=samples, cap=cap))
        if backend == "postgres":
            latency = await w3_processes(db, samples=samples, cap=cap)
            self._latencies(tag, backend, "w3x", latency)

    async def _idle(self, tag: str, backend: str, db: Database) -> None:
        if not self.autorun:
            for key in ("w4_between", "w4_tick", "w4_tick_tx"):
                self.results.missing[backend, key] = NO_AUTORUN
            return
        idle = await w4_idle(db, seconds=self.s.idle_seconds)
        self.results.add(backend, "w4_between", idle.between_per_minute)
        self.results.add(backend, "w4_tick", idle.per_tick_statements)
        self.results.add(backend, "w4_tick_tx", idle.per_tick_transactions)
        say(
            f"{tag} W4: {idle.between_per_minute:.1f} statements/min between ticks, "
            f"{idle.per_tick_statements:.2f} per tick"
        )

    def _rate(self, tag: str, backend: str, key: str, rate: Rate) -> None:
        self.results.add(backend, key, rate.per_second, rate.complete)
        capped = "" if rate.complete else f" (time cap: {rate.count:,} done)"
        say(f"{tag} {key}: {rate.per_second:,.0f} jobs/s{capped}")

    def _drain(self, tag: str, backend: str, suffix: str, drain: Drain) -> None:
        self._rate(tag, backend, f"w1_{suffix}", drain.rate)
        self.results.add(backend, f"w5_{suffix}", drain.lag_p99_ms)
        if suffix == "10":
            self.results.add(backend, "cpu_10", drain.cpu_ms_per_job)
        say(f"{tag} W5 lag p99 {drain.lag_p99_ms:.1f} ms, CPU {drain.cpu_ms_per_job:.2f} ms/job")

    def _latencies(self, tag: str, backend: str, prefix: str, latency: Latency) -> None:
        complete = len(latency.samples) >= self.s.samples
        self.results.add(backend, f"{prefix}_p50", latency.p50, complete)
        self.results.add(backend, f"{prefix}_p99", latency.p99, complete)
        say(
            f"{tag} {prefix}: p50 {latency.p50:.1f} ms, p99 {latency.p99:.1f} ms "
            f"({len(latency.samples)} samples)"
        )


async def bench(settings: Settings) -> tuple[Bench, dict[str, Any]]:
    databases = Databases(settings.postgres_url)
    facts: dict[str, Any] = {"load_before": os.getloadavg()}
    try:
        runner = Bench(settings, databases)
        for backend in settings.backends:
            await runner.prepare(backend)
        main = runner.main.get("postgres")
        if isinstance(main, PostgresDatabase):
            facts["postgres"] = await main.driver.server_version()
        for index in range(settings.runs):
            for backend in settings.backends:
                await runner.run(backend, index)
    finally:
        await databases.close()
    facts["load_after"] = os.getloadavg()
    return runner, facts


def parse(argv: list[str] | None) -> Settings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small smoke-sized run")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--runs", type=int, help="repetitions (median reported); default 3")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL,
        help=f"server to create the benchmark databases on (env {POSTGRES_ENV})",
    )
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument(
        "--only",
        help="comma-separated subset of w1,w2,w3,w4,w6,w7,w8,w9 (W5 and the floors come with "
        "W1/W2; W8 and W9 measure their references, the floor and W1 at limit=10, if W1 is not "
        "chosen)",
    )
    for name, kind in (
        ("procs", int),
        ("jobs", int),
        ("cap", float),
        ("one-jobs", int),
        ("samples", int),
        ("idle-seconds", float),
        ("scale-rows", int),
        ("fast-jobs", int),
        ("slow-seconds", float),
        ("workflow-jobs", int),
    ):
        parser.add_argument(f"--{name}", type=kind, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    runs = args.runs or (1 if args.quick else 3)
    if runs < 1:
        parser.error("--runs must be at least 1")
    only = WORKLOADS if not args.only else frozenset(args.only.lower().split(","))
    if not only <= WORKLOADS:
        parser.error(f"--only takes {','.join(sorted(WORKLOADS))}, got {args.only!r}")
    settings = Settings(backends, runs, args.postgres_url, args.out, only)
    if args.quick:
        settings = replace(settings, **QUICK)
    return _overrides(settings, args)


def _overrides(settings: Settings, args: argparse.Namespace) -> Settings:
    """Sizes given on the command line (used by the smoke test) win over the presets."""
    changes: dict[str, Any] = {}
    names = ("procs", "jobs", "cap", "one_jobs", "samples", "idle_seconds")
    for name in (*names, "fast_jobs", "slow_seconds", "workflow_jobs"):
        if getattr(args, name) is not None:
            changes[name] = getattr(args, name)
    if args.samples is not None:
        changes["latency_cap"] = max(1.0, args.samples * 0.25)
    if args.scale_rows is not None:
        changes["scale_rows"] = {b: args.scale_rows for b in ("sqlite", "postgres")}
    return replace(settings, **changes)


def main(argv: list[str] | None = None) -> int:
    settings = parse(argv)
    started = time.perf_counter()
    runner, facts = asyncio.run(bench(settings))
    facts["seconds"] = time.perf_counter() - started
    found = report.rows(runner.results, _scale_labels(settings), _label_fields(settings))
    print(machine.summary(facts, runner.autorun))
    print(report.text_table(found))
    report.write_markdown(
        settings.out,
        machine.markdown_head(facts, runner.autorun, settings),
        report.markdown_table(found),
        machine.markdown_notes(settings, runner.setup_seconds),
    )
    say(f"wrote {settings.out} in {facts['seconds']:.0f} s")
    return 0


def _scale_labels(settings: Settings) -> dict[str, str]:
    return {b: f"{rows:,}" for b, rows in settings.scale_rows.items()}


def _label_fields(settings: Settings) -> dict[str, str]:
    """What the row labels name: process count and the workloads' sizes."""
    return {
        "procs": str(settings.procs),
        "jobs": f"{settings.jobs:,}",
        "fast": f"{settings.fast_jobs:,}",
        "fast_ms": f"{settings.fast_seconds * 1000:g}",
        "slow": f"{settings.slow_seconds:g}",
        "workflows": f"{settings.workflow_jobs:,}",
    }


if __name__ == "__main__":
    sys.exit(main())
