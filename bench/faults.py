"""The fault-injection run: drain workflow jobs with worker processes while faults strike.

``python bench/faults.py [--mode kill|restart|both] [--jobs N] [--workers N] [--seed S] ...``
queues N three-step workflow jobs, drains them with worker processes (each running the Jobs
engine with a short lease) and meanwhile SIGKILLs a random worker every 1-3 s (``kill``, a
replacement starts at once) and/or restarts PostgreSQL twice (``restart``). A ledger written
by every step through its own connection shows what really ran; from it and the final job rows
the run prints lost, stuck, failed, re-run and counted-try figures and the recovery time after
each fault, and exits 1 unless every figure that must be zero is. ``--short`` is the small
version the test suite runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sys
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import anyio
import faults_ledger
import faults_report
import faults_signals
from faults_figures import Event, JobRow, figures
from faults_setup import Progress, RunData, Server, SetupError, make_data
from faults_worker import FAILING_STEP, STEPS, WorkerConfig, make_jobs
from faults_workers import Workers
from run import DEFAULT_POSTGRES_URL, POSTGRES_ENV

import asyncjobs

QUEUE_BATCH = 500
SHORT = {
    "jobs": 300,
    "workers": 3,
    "kills": 1,
    "restarts": 1,
    "kill_every": [0.3, 0.6],
    "step_ms": 100.0,
}


@dataclass
class Drain:
    """What the supervisor knows while the drain runs."""

    total: int
    finished: int = 0
    changed_at: float = field(default_factory=time.monotonic)
    events: list[Event] = field(default_factory=list)
    under_way: anyio.Event = field(default_factory=anyio.Event)  # a first job finished
    over: anyio.Event = field(default_factory=anyio.Event)

    def record(self, event: Event) -> None:
        self.events.append(event)
        self.changed_at = time.monotonic()  # a fault's own downtime is not a stall


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="faults.py", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--mode", choices=["kill", "restart", "both"], default="kill", help="default: kill")
    add("--backend", choices=["postgres", "sqlite"], default="postgres", help="default: postgres")
    add(
        "--database-url",
        help=f"the PostgreSQL server; the run makes its own databases on it (default: env"
        f" {POSTGRES_ENV}, else {DEFAULT_POSTGRES_URL})",
    )
    add("--jobs", type=int, default=10_000, help="workflow jobs to drain (default 10,000)")
    add("--workers", type=int, default=4, help="worker processes (default 4)")
    add("--seed", type=int, help="seed of the fault schedule (printed; default: random)")
    add("--lease", type=float, default=3.0, help="lease duration in seconds (default 3)")
    add(
        "--kill-every",
        type=float,
        nargs=2,
        default=[1.0, 3.0],
        metavar=("MIN", "MAX"),
        help="seconds between kills, drawn uniformly (default 1 3)",
    )
    add("--kills", type=int, help="stop killing after this many (default: until drained)")
    add("--restarts", type=int, default=2, help="server restarts, evenly spread (default 2)")
    add(
        "--restart-command",
        help="how to restart the server (default: pg_ctlcluster, for the local cluster on the"
        " URL's port)",
    )
    add(
        "--engine",
        choices=["autorun", "loop"],
        default="autorun",
        help="autoRun every second (default), or run() in a loop",
    )
    add("--limit", type=int, default=10, help="jobs a worker claims at once (default 10)")
    add("--step-ms", type=float, default=5.0, help="how long each step sleeps (default 5)")
    add("--fail-every", type=int, default=0, help="every Nth job fails step 2 once (0: none)")
    add("--retries", type=int, help="the workflow's retries (default 0, or 1 with --fail-every)")
    add(
        "--timeout",
        type=float,
        default=900.0,
        help="seconds the drain may take at most (default 900)",
    )
    add(
        "--waits",
        action="store_true",
        help="jobs also sleep after step 1 and wait for a signal after step 2 (half of the"
        " signals sent before the drain, half during it)",
    )
    add("--json", help="also write the figures to this file")
    add("--short", action="store_true", help="300 jobs, 3 workers, 1 kill, 1 restart, 100 ms steps")
    args = parser.parse_args(argv)
    if args.short:
        for name, value in SHORT.items():
            if parser.get_default(name) == getattr(args, name):
                setattr(args, name, value)
    _check(parser, args)
    return args


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.retries is None:
        args.retries = 1 if args.fail_every else 0
    args.database_url = args.database_url or os.environ.get(POSTGRES_ENV, DEFAULT_POSTGRES_URL)
    args.seed = random.randrange(2**32) if args.seed is None else args.seed
    if args.mode != "kill" and args.backend == "sqlite":
        parser.error(f"--mode {args.mode} restarts PostgreSQL: it needs --backend postgres")
    if min(args.jobs, args.workers, args.limit) < 1 or args.lease <= 0:
        parser.error("--jobs, --workers, --limit and --lease must be positive")
    if not 0 < args.kill_every[0] <= args.kill_every[1]:
        parser.error("--kill-every MIN MAX needs 0 < MIN <= MAX")
    if args.fail_every and args.retries < 1:
        parser.error("--fail-every needs --retries 1 or more, or the failing jobs fail for good")


def worker_config(args: argparse.Namespace, data: RunData) -> WorkerConfig:
    return WorkerConfig(
        jobs_url=data.jobs_url,
        ledger_url=data.ledger_url,
        lease=args.lease,
        limit=args.limit,
        engine=args.engine,
        retries=args.retries,
        step_ms=args.step_ms,
        waits=args.waits,
    )


async def queue_jobs(config: WorkerConfig, count: int, fail_every: int) -> dict[int, int]:
    """Queue the jobs; returns each job's id and the tries it should take."""
    expected: dict[int, int] = {}
    async with make_jobs(config).lifespan(auto_run=False) as jobs:
        for start in range(0, count, QUEUE_BATCH):
            items = []
            for i in range(start, min(count, start + QUEUE_BATCH)):
                fail = bool(fail_every) and i % fail_every == 0
                items.append({"workflow": "faulty", "input": {"i": i, "fail": fail}})
            for job in await jobs.queue_many(items):
                expected[job.id] = 2 if job.input["fail"] else 1
    return expected


async def watch(drain: Drain, progress: Progress, grace: float, timeout: float) -> None:
    """Follow the finished count until every job finished, or nothing moved for ``grace``."""
    deadline = time.monotonic() + timeout
    while drain.finished < drain.total and time.monotonic() < deadline:
        count = await progress.finished()
        if count is not None and count != drain.finished:
            drain.finished, drain.changed_at = count, time.monotonic()
            drain.under_way.set()
        if time.monotonic() - drain.changed_at > grace:
            break
        await anyio.sleep(0.25)
    drain.under_way.set()
    drain.over.set()


async def kill_loop(drain: Drain, workers: Workers, args: argparse.Namespace) -> None:
    """SIGKILL a random worker every ``--kill-every`` seconds once jobs finish, and replace it."""
    rng = random.Random(args.seed)
    kills = 0
    await drain.under_way.wait()
    async with anyio.create_task_group() as tg:
        while args.kills is None or kills < args.kills:
            with anyio.move_on_after(rng.uniform(*args.kill_every)):
                await drain.over.wait()
            if drain.over.is_set():
                return
            killed = workers.kill(rng)
            if killed is None:
                continue
            kills += 1
            drain.record(Event("kill", killed[1], killed[1], killed[0]))
            tg.start_soon(workers.ready, await workers.spawn())


async def restart_loop(drain: Drain, server: Server, restarts: int) -> None:
    """Restart the server each time another 1/(restarts + 1) of the jobs has finished."""
    for n in range(1, restarts + 1):
        while drain.finished < drain.total * n / (restarts + 1):
            if drain.over.is_set():
                return
            await anyio.sleep(0.1)
        with anyio.CancelScope(shield=True):
            outage = await server.restart()
        drain.record(Event("restart", outage.began, outage.up, down=outage.down))


async def supervise(
    args: argparse.Namespace,
    drain: Drain,
    workers: Workers,
    server: Server | None,
    unsent: list[int],
) -> None:
    progress = Progress(workers.config.jobs_url)
    try:
        async with anyio.create_task_group() as tg:
            if unsent:
                tg.start_soon(faults_signals.send_during, workers.config, unsent, drain.under_way)
            if args.mode in ("kill", "both"):
                tg.start_soon(kill_loop, drain, workers, args)
            if args.mode in ("restart", "both") and server is not None:
                tg.start_soon(restart_loop, drain, server, args.restarts)
            await watch(drain, progress, grace=max(5 * args.lease, 10.0), timeout=args.timeout)
    finally:
        await progress.close()


async def read_rows(config: WorkerConfig, expected: dict[int, int]) -> list[JobRow]:
    async with make_jobs(config).lifespan(auto_run=False) as jobs:
        found = {job.id: job for job in await jobs.find(limit=len(expected) + 100)}
    return [_row(job_id, found.get(job_id), tries) for job_id, tries in expected.items()]


def _row(job_id: int, job: asyncjobs.Job | None, expected_tries: int) -> JobRow:
    if job is None:
        return JobRow(job_id, "missing", None, 0, expected_tries)
    done = job.completed_at.timestamp() if job.completed_at else None
    error = f"{job.error['name']}: {job.error['message']}" if job.error else ""
    return JobRow(job_id, job.status, done, job.total_tried, expected_tries, error)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    began = time.time()
    # SIGTERM cleans up like Ctrl-C: workers stopped, server up, databases dropped.
    current = asyncio.current_task()
    assert current is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, current.cancel)
    server = None
    if args.backend == "postgres":
        server = Server(args.database_url, args.restart_command)
        if args.mode != "kill":
            await server.prepare()
    data = await make_data(args.backend, args.database_url)
    workers = Workers(worker_config(args, data), data.folder)
    try:
        faults_report.intro(args, STEPS, FAILING_STEP)
        return await measure(args, workers, server, data.ledger_url, began)
    finally:
        with anyio.CancelScope(shield=True):
            async with AsyncExitStack() as cleanup:  # each step runs even if one before failed
                cleanup.push_async_callback(data.close)
                if server is not None:
                    cleanup.push_async_callback(server.ensure_up)
                cleanup.push_async_callback(workers.stop)


async def measure(
    args: argparse.Namespace, workers: Workers, server: Server | None, ledger: str, began: float
) -> dict[str, Any]:
    """Queue, drain under faults, stop the workers, then read the job rows and the ledger."""
    expected = await queue_jobs(workers.config, args.jobs, args.fail_every)
    unsent = await faults_signals.send_before(workers.config, list(expected)) if args.waits else []
    drain = Drain(total=len(expected))
    t0 = await workers.start(args.workers)
    await supervise(args, drain, workers, server, unsent)
    await workers.stop()
    rows = await read_rows(workers.config, expected)
    found = figures(rows, await faults_ledger.read(ledger), drain.events, STEPS)
    result = faults_report.summary(found, rows, t0, began, workers)
    if args.waits:
        await faults_signals.check(workers.config, result)
    return result


def main(argv: list[str]) -> int:
    args = parse(argv)
    try:
        result = asyncio.run(run(args))
    except SetupError as exc:
        print(f"faults.py: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("faults.py: interrupted; workers stopped, run databases removed", file=sys.stderr)
        return 130
    if args.json:
        with open(args.json, "w") as out:
            json.dump(result, out, indent=2)
    return 1 if result["problems"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
