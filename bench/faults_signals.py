"""The signals of a fault-injection run with ``--waits``: half sent before the drain (kept for
the wait), half while it runs (waking suspended jobs, retried through restarts), and the check
that each completed job consumed exactly its own signal."""

from __future__ import annotations

from typing import Any

import anyio
from faults_report import say
from faults_worker import WorkerConfig, make_jobs

import asyncjobs

SEND_BATCH = 20  # signals sent at a time during the drain
SEND_EVERY = 0.05  # seconds between batches


async def send_before(config: WorkerConfig, ids: list[int]) -> list[int]:
    """Signal every other job now; return the ids left for ``send_during``."""
    async with make_jobs(config).lifespan(auto_run=False) as jobs:
        for job_id in ids[::2]:
            await _send(jobs, job_id)
    return ids[1::2]


async def send_during(config: WorkerConfig, ids: list[int], under_way: anyio.Event) -> None:
    """Once jobs finish, signal the rest a batch at a time."""
    await under_way.wait()
    async with make_jobs(config).lifespan(auto_run=False) as jobs:
        for start in range(0, len(ids), SEND_BATCH):
            for job_id in ids[start : start + SEND_BATCH]:
                await _send(jobs, job_id)
            await anyio.sleep(SEND_EVERY)


async def _send(jobs: asyncjobs.Jobs, job_id: int) -> None:
    """Send job ``job_id`` its signal, retried while the server is away. A resend after a lost
    answer may store it twice: the job consumes one, so the check sees no difference."""
    job = await jobs.get(job_id)
    i = job.input["i"] if job is not None else None
    while True:
        try:
            await jobs.signal(job_id, "go", {"i": i})
            return
        except asyncjobs.StorageError:
            await anyio.sleep(0.2)


async def check(config: WorkerConfig, result: dict[str, Any]) -> None:
    """Every completed job got its own signal's payload; mismatches count as a problem."""
    async with make_jobs(config).lifespan(auto_run=False) as jobs:
        done = await jobs.find(where={"status": "completed"}, limit=10**7)
    wrong = sum(1 for job in done if (job.output or {}).get("got") != job.input["i"])
    say(f"  signals consumed wrongly: {wrong} of {len(done):,} completed jobs")
    result["signals_consumed_wrongly"] = wrong
    if wrong:
        result["problems"]["signals consumed wrongly"] = wrong
