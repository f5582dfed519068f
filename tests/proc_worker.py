"""A worker process for the crash and multi-process tests.

``python -m tests.proc_worker URL OUT MODE`` where MODE is ``drain`` (run until idle) or
``stall`` (run, and hang forever inside step 2 of the crash or signalled workflow) or
``rescue`` (poll until no job is queued or processing: the crashed one finished here).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import anyio

import asyncjobs

OUT = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(os.devnull)
MODE = sys.argv[3] if len(sys.argv) > 3 else "drain"
# The crash test needs a lease that expires quickly; draining workers get a long one so that a
# starved heartbeat on a loaded machine cannot let a job run twice.
LEASE = asyncjobs.Lease(duration=2, safety_buffer=0.5)
DRAIN_LEASE = asyncjobs.Lease(duration=60, safety_buffer=5)
START_AT = float(os.environ.get("PROC_WORKER_START_AT", "0"))


def note(line: str) -> None:
    with OUT.open("a") as out:
        out.write(f"{line}\n")
        out.flush()
        os.fsync(out.fileno())


@asyncjobs.task("count")
async def count(*, input: dict[str, Any]) -> None:
    note(f"ran {input['n']}")


@asyncjobs.task("mark")
async def mark(*, input: dict[str, Any]) -> dict[str, str]:
    note(f"{input['step']} pid={os.getpid()}")
    if input["step"] == "step2" and MODE == "stall":
        await anyio.sleep_forever()
    return {"done": input["step"]}


@asyncjobs.workflow("crashy")
async def crashy(*, tasks: Any) -> None:
    await tasks.mark("1", input={"step": "step1"})
    await tasks.mark("2", input={"step": "step2"})


@asyncjobs.workflow("signalled")
async def signalled(*, tasks: Any, wait_for_signal: Any) -> dict[str, Any]:
    first = await wait_for_signal("a", "go")
    await tasks.mark("1", input={"step": "step2"})  # stalls here in ``stall`` mode
    second = await wait_for_signal("b", "go")
    note(f"got {first['n']} {second['n']}")
    return {"first": first, "second": second}


def make_jobs(url: str, lease: asyncjobs.Lease = LEASE) -> asyncjobs.Jobs:
    return asyncjobs.Jobs(
        tasks=[count, mark],
        workflows=[crashy, signalled],
        database_url=url,
        auto_run=[],
        lease=lease,
        delete_job_on_complete=False,
    )


async def main() -> None:
    jobs = make_jobs(sys.argv[1], DRAIN_LEASE if MODE == "drain" else LEASE)
    async with jobs.lifespan(auto_run=False):
        await anyio.sleep(max(0.0, START_AT - time.time()))  # let every worker start together
        if MODE == "rescue":
            await rescue(jobs)
            return
        idle_rounds = 0
        while idle_rounds < 3:
            result = await jobs.run(limit=20)
            idle_rounds = idle_rounds + 1 if result.no_jobs_remaining else 0
            if result.no_jobs_remaining:
                await anyio.sleep(0.05)


async def rescue(jobs: asyncjobs.Jobs) -> None:
    """Poll until the crashed job's lease expires and this process finishes it."""
    with anyio.fail_after(30):
        while await jobs.find(where={"status": "processing"}) or await jobs.find(
            where={"status": "queued"}
        ):
            await jobs.run()
            await anyio.sleep(0.05)


if __name__ == "__main__":
    anyio.run(main)
