"""Workloads of a busy autoRun runner: W7 one slow job among fast ones, W8 draining a backlog.

Both start an app with one autoRun entry on the default every-minute cron with wake-on-queue,
let its first (empty) tick pass, then queue their jobs in one ``queue_many()`` call: the wake
that call sends, and the entry's own "keep draining while batches come back full", do the rest.
Timing starts when ``queue_many()`` returns (the jobs are committed).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import anyio
from autorun_workloads import SETTLE
from bench_tasks import Tally, make_jobs, set_tally
from databases import Database
from measure import Deadline, Drain, LagProbe, Rate

import asyncjobs

EVERY_MINUTE = "* * * * *"
FINISHED_POLL = 0.001  # seconds between checks that the last completions committed


def autorun_jobs(url: str, limit: int) -> asyncjobs.Jobs:
    return make_jobs(url, auto_run=[asyncjobs.AutoRun(cron=EVERY_MINUTE, limit=limit)])


@dataclass(frozen=True)
class Mix:
    """W7: seconds until the last fast job ended, and the least it could take."""

    seconds: float
    ideal: float
    complete: bool

    @property
    def over(self) -> float:
        return self.seconds - self.ideal


def ideal_seconds(*, fast_jobs: int, fast_seconds: float, slow_seconds: float, limit: int) -> float:
    """When the last fast job could end if every slot were kept busy.

    The slow job holds one slot; the fast ones share the others, and all of them once the slow
    one has ended.
    """
    if limit == 1:
        return slow_seconds + fast_jobs * fast_seconds
    beside = math.ceil(fast_jobs / (limit - 1)) * fast_seconds
    if beside <= slow_seconds:
        return beside
    return (fast_jobs * fast_seconds + slow_seconds) / limit


async def w7_mix(
    db: Database,
    *,
    fast_jobs: int,
    fast_seconds: float,
    slow_seconds: float,
    limit: int,
    cap: float,
) -> Mix:
    """W7: one slow job queued first, then ``fast_jobs`` short ones, all in one call."""
    await db.reset()
    tally = Tally({"fast": fast_jobs, "slow": 1})
    slow = {"task": "nap", "input": {"s": slow_seconds, "kind": "slow"}}
    fast = [{"task": "nap", "input": {"s": fast_seconds, "kind": "fast"}}] * fast_jobs
    jobs = autorun_jobs(db.url, limit)
    set_tally(tally)
    await jobs.start()
    try:
        await anyio.sleep(SETTLE)
        await jobs.queue_many([slow, *fast])
        deadline, ended = Deadline(cap), math.nan
        with anyio.move_on_after(cap):
            ended = await tally.wait("fast") - deadline.start
            await tally.wait("slow")  # so that stopping does not wait for it, or hand it back
    finally:
        set_tally(None)
        await jobs.stop()
    complete = tally.counts["fast"] >= fast_jobs
    ideal = ideal_seconds(
        fast_jobs=fast_jobs, fast_seconds=fast_seconds, slow_seconds=slow_seconds, limit=limit
    )
    return Mix(ended if complete else deadline.elapsed(), ideal, complete)


async def w8_drain(db: Database, *, n: int, limit: int, cap: float) -> Drain:
    """W8 (with W5's lag probe): ``n`` no-op jobs queued into an idle app, until all are done.

    Done means every handler ended and every completion committed (no unfinished row left).
    """
    await db.reset()
    tally = Tally({"done": n})
    jobs = autorun_jobs(db.url, limit)
    set_tally(tally)
    await jobs.start()
    try:
        await anyio.sleep(SETTLE)
        await jobs.queue_many([{"task": "counted", "input": {"i": i}} for i in range(n)])
        async with LagProbe.running() as probe:
            cpu, deadline = time.process_time(), Deadline(cap)
            with anyio.move_on_after(cap):
                await tally.wait("done")
                await _until_finished(db)
            elapsed, cpu = deadline.elapsed(), time.process_time() - cpu
    finally:
        set_tally(None)
        await jobs.stop()
    done = tally.counts["done"]
    rate = Rate(done, elapsed, complete=done >= n and elapsed < cap)
    per_job = cpu * 1000 / done if done else math.nan
    return Drain(rate=rate, lag_p99_ms=probe.p99_ms(), cpu_ms_per_job=per_job)


async def _until_finished(db: Database) -> None:
    """Poll the table: a completion's commit sends no event this process could wait for."""
    while True:
        if not await db.driver.count_unfinished():
            return
        await anyio.sleep(FINISHED_POLL)
