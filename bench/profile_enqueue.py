"""Profile W2's bulk enqueue: ``queue_many()`` in batches, CPU per row and where it goes.

    python bench/profile_enqueue.py [--backend sqlite|postgres] [--rows N] [--batch N]
                                    [--save DIR]

First an unprofiled pass times ``--rows`` rows in ``--batch``-row calls (wall and process CPU
per row), then a second pass of the same size runs under cProfile: own time per row summed by
component, then the functions with the most own time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

from bench_tasks import make_jobs
from databases import Databases
from profile_drain import by_component
from run import DEFAULT_POSTGRES_URL, POSTGRES_ENV

import asyncjobs


async def _enqueue(jobs: asyncjobs.Jobs, rows: int, batch: int) -> None:
    for start in range(0, rows, batch):
        size = min(batch, rows - start)
        await jobs.queue_many([{"task": "noop", "input": {"i": start + i}} for i in range(size)])


async def main_async(args: argparse.Namespace) -> str:
    databases = Databases(args.postgres_url)
    try:
        db = await databases.make(args.backend, "profile_enqueue")
        await db.reset()
        jobs = make_jobs(db.url)
        await jobs.start()
        try:
            await _enqueue(jobs, 10 * args.batch, args.batch)  # warm: statements prepared
            wall, cpu = time.perf_counter(), time.process_time()
            await _enqueue(jobs, args.rows, args.batch)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            head = (
                f"{args.rows:,} rows in queue_many() calls of {args.batch}: "
                f"{args.rows / wall:,.0f} rows/s; per row {wall * 1e6 / args.rows:,.1f} µs wall, "
                f"{cpu * 1e6 / args.rows:,.1f} µs process CPU"
            )
            print(head, flush=True)
            profile = cProfile.Profile()
            profile.enable()
            await _enqueue(jobs, args.rows, args.batch)
            profile.disable()
        finally:
            await jobs.stop()
    finally:
        await databases.close()
    out = io.StringIO()
    stats: Any = pstats.Stats(profile, stream=out)
    out.write(by_component(stats, args.rows, unit="row"))
    stats.strip_dirs().sort_stats("tottime").print_stats(30)
    text = head + "\n" + out.getvalue()
    print(out.getvalue(), flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    )
    parser.add_argument("--save", type=Path, help="also write the output to DIR/<name>.txt")
    args = parser.parse_args(argv)
    text = asyncio.run(main_async(args))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        name = f"w2-{args.backend}-batch{args.batch}-cprofile.txt"
        (args.save / name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
