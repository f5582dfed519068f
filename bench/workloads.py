"""The asyncjobs workloads: W1 drain (with W5 host-loop lag), W2 enqueue, W6 drain at scale and
W9 workflow drain."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path

from bench_tasks import make_jobs
from databases import Database
from measure import Deadline, Drain, LagProbe, Rate

import asyncjobs

HERE = Path(__file__).resolve().parent
WORKER_START_TIMEOUT = 60.0
FILL_BATCH = 500  # W9 fills its queue through queue_many() in calls of this size (not timed)


def successes(result: asyncjobs.RunResult) -> int:
    return sum(1 for status in result.job_status.values() if status == "success")


async def drain(jobs: asyncjobs.Jobs, *, limit: int, n: int, cap: float) -> Rate:
    """``run(limit=...)`` until it finds nothing (or the cap passes), as a worker loop would."""
    done, deadline = 0, Deadline(cap)
    while not deadline.passed:
        result = await jobs.run(limit=limit)
        if result.no_jobs_remaining:
            break
        done += successes(result)
    return Rate(done, deadline.elapsed(), complete=done >= n)


async def w1_drain(db: Database, *, n: int, limit: int, cap: float) -> Drain:
    """W1 (and W5): drain ``n`` queued no-op jobs in this process while probing the loop's lag."""
    await db.reset()
    await db.driver.fill_queued(n)
    return await _drain_measured(db, n=n, limit=limit, cap=cap)


async def _drain_measured(db: Database, *, n: int, limit: int, cap: float) -> Drain:
    jobs = make_jobs(db.url)
    await jobs.start()
    try:
        async with LagProbe.running() as probe:
            cpu = time.process_time()
            rate = await drain(jobs, limit=limit, n=n, cap=cap)
            cpu = time.process_time() - cpu
    finally:
        await jobs.stop()
    per_job = cpu * 1000 / rate.count if rate.count else float("nan")
    return Drain(rate=rate, lag_p99_ms=probe.p99_ms(), cpu_ms_per_job=per_job)


async def w6_setup(db: Database, rows: int) -> float:
    """Fill ``rows`` finished jobs once; returns the seconds it took."""
    started = time.perf_counter()
    await db.driver.fill_finished(rows)
    return time.perf_counter() - started


async def w6_drain(db: Database, *, n: int, limit: int, cap: float) -> Drain:
    """W6: W1 on top of the finished jobs; the queued ones left over are removed afterwards."""
    await db.driver.fill_queued(n)
    try:
        return await _drain_measured(db, n=n, limit=limit, cap=cap)
    finally:
        await db.driver.delete_unfinished()
        await db.driver.vacuum()


async def w9_drain(db: Database, *, n: int, limit: int, cap: float) -> Rate:
    """W9: drain ``n`` queued 3-step workflows with ``run(limit=...)`` in a loop, as W1 does."""
    await db.reset()
    jobs = make_jobs(db.url)
    await jobs.start()
    try:
        for first in range(0, n, FILL_BATCH):
            count = min(FILL_BATCH, n - first)
            await jobs.queue_many([{"workflow": "three-steps", "input": {"i": first}}] * count)
        await db.driver.analyze()
        return await drain(jobs, limit=limit, n=n, cap=cap)
    finally:
        await jobs.stop()


async def w2_queue(db: Database, *, n: int, cap: float) -> Rate:
    """W2: ``queue()`` one job at a time."""
    await db.reset()
    jobs = make_jobs(db.url)
    await jobs.start()
    done, deadline = 0, Deadline(cap)
    try:
        while done < n and not deadline.passed:
            await jobs.queue(task="noop", input={"i": done})
            done += 1
    finally:
        await jobs.stop()
    return Rate(done, deadline.elapsed(), complete=done >= n)


async def w2_queue_many(db: Database, *, n: int, batch: int, cap: float) -> Rate:
    """W2: ``queue_many()`` in batches of ``batch``."""
    await db.reset()
    jobs = make_jobs(db.url)
    await jobs.start()
    done, deadline = 0, Deadline(cap)
    try:
        while done < n and not deadline.passed:
            items = [{"task": "noop", "input": {"i": i}} for i in range(done, done + batch)]
            await jobs.queue_many(items)
            done += batch
    finally:
        await jobs.stop()
    return Rate(done, deadline.elapsed(), complete=done >= n)


def worker_env() -> dict[str, str]:
    """Workers import the same asyncjobs as this process, and the bench modules."""
    package = Path(asyncjobs.__file__).resolve().parent.parent
    paths = [str(package), str(HERE), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


async def spawn_worker(*args: str) -> asyncio.subprocess.Process:
    """Start ``worker.py`` and wait for its ``ready`` line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "worker.py"),
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=worker_env(),
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), WORKER_START_TIMEOUT)
    if line.strip() != b"ready":
        proc.kill()
        raise RuntimeError(f"benchmark worker did not start: {line!r}")
    return proc


async def w1_processes(db: Database, *, n: int, limit: int, cap: float, procs: int) -> Rate:
    """W1 over ``procs`` worker processes, timed from the moment all are told to go."""
    await db.reset()
    await db.driver.fill_queued(n)
    workers = await asyncio.gather(
        *(spawn_worker("drain", db.url, str(limit), str(cap)) for _ in range(procs))
    )
    started = time.time()
    for proc in workers:
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
    reports = []
    for proc in workers:
        out, _ = await proc.communicate()
        reports.append(json.loads(out.decode().strip().splitlines()[-1]))
    done = sum(int(r["done"]) for r in reports)
    seconds = max(float(r["end"]) for r in reports) - started
    return Rate(done, seconds, complete=done >= n)
