"""A worker process for the concurrency tests: runs keyed jobs until ``count`` are complete.

Usage: ``python -m tests.keyed_worker DATABASE_URL COUNT ORDER``. Prints ``ready`` once connected.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import anyio

import asyncjobs


def doc_key(*, input: dict[str, Any]) -> str:
    return str(input["doc"])


@asyncjobs.task("sync-doc", concurrency=doc_key)
async def sync_doc(*, input: dict[str, Any]) -> dict[str, Any]:
    # CLOCK_MONOTONIC is shared by every process of the machine, so the spans compare.
    start = time.monotonic()
    await anyio.sleep(0.02)
    return {"doc": input["doc"], "start": start, "end": time.monotonic(), "pid": os.getpid()}


async def main(url: str, count: int, order: str) -> None:
    jobs = asyncjobs.Jobs(
        tasks=[sync_doc], database_url=url, auto_run=[], delete_job_on_complete=False
    )
    await jobs.start()
    print("ready", flush=True)
    try:
        with anyio.fail_after(30):
            while len(await jobs.find(where={"status": "completed"}, limit=count)) < count:
                result = await jobs.run(limit=1, all_queues=True, processing_order=order)
                if result.no_jobs_remaining:
                    await anyio.sleep(0.005)
    finally:
        await jobs.stop()


if __name__ == "__main__":
    anyio.run(main, sys.argv[1], int(sys.argv[2]), sys.argv[3])
