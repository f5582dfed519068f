"""How long ``queue()`` of a big input blocks the host event loop, per input shape and size.

    PYTHONPATH=src python bench/input_stall.py [--backend sqlite|postgres] [--runs 3]

A probe task sleeps 1 ms in a loop; the longest gap between its wake-ups while one ``queue()``
call runs is that call's worst stall. Each shape is built to about the given size of JSON text.
SQLite runs in a temporary folder; on PostgreSQL the run creates its own database on the
server and drops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from statistics import median
from typing import Any

import asyncjobs

POSTGRES_URL = os.environ.get(
    "ASYNCJOBS_BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
MB = 1_000_000


def one_string(size: int) -> dict[str, Any]:
    return {"text": "x" * size}


def many_numbers(size: int) -> dict[str, Any]:
    return {"numbers": [7] * (size // 3)}  # "7, " each


def many_records(size: int) -> dict[str, Any]:
    record = {"id": 123456, "name": "Ada Lovelace", "email": "ada@example.com", "ok": True}
    count = size // len(json.dumps(record))
    return {"rows": [dict(record, id=i) for i in range(count)]}


SHAPES: dict[str, Callable[[int], dict[str, Any]]] = {
    "one string": one_string,
    "numbers": many_numbers,
    "records": many_records,
}


@asyncjobs.task("sink")
async def sink(*, input: dict[str, Any]) -> None:
    return None


async def worst_stall(call: Callable[[], Any]) -> tuple[float, str]:
    """The longest gap (ms) between 1 ms probe wake-ups while ``call()`` runs; its outcome."""
    gaps: list[float] = []
    done = asyncio.Event()

    async def probe() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(probe())
    await asyncio.sleep(0.01)
    try:
        await call()
        outcome = "stored"
    except asyncjobs.ValidationError as exc:
        outcome = f"refused: {str(exc)[:60]}"
    finally:
        done.set()
        await task
    return max(gaps) * 1000, outcome


async def measure(url: str, runs: int, sizes: list[float]) -> None:
    jobs = asyncjobs.Jobs(tasks=[sink], database_url=url, auto_run=[])
    async with jobs.lifespan(auto_run=False):
        for shape, build in SHAPES.items():
            for mb in sizes:
                value = build(int(mb * MB))
                stalls, outcome = [], ""
                for _ in range(runs):
                    stall, outcome = await worst_stall(
                        lambda value=value: jobs.queue(task="sink", input=value)  # type: ignore[misc]
                    )
                    stalls.append(stall)
                figures = ", ".join(f"{s:.0f}" for s in stalls)
                print(
                    f"{shape:>10} {mb:>5g} MB: worst stall median {median(stalls):6.0f} ms"
                    f" ({figures})  {outcome}"
                )


@asynccontextmanager
async def postgres_database(server_url: str) -> AsyncIterator[str]:
    import asyncpg
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"asyncjobs_stall_{uuid.uuid4().hex[:10]}"
    dsn = server.set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield server.set(database=name).render_as_string(hide_password=False)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def run(backend: str, runs: int, sizes: list[float]) -> None:
    if backend == "postgres":
        async with postgres_database(POSTGRES_URL) as url:
            await measure(url, runs, sizes)
        return
    with tempfile.TemporaryDirectory() as folder:
        await measure(f"sqlite+aiosqlite:///{Path(folder) / 'stall.db'}", runs, sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="0.1,0.5,1,10", help="MB, comma-separated")
    args = parser.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    asyncio.run(run(args.backend, args.runs, sizes))


if __name__ == "__main__":
    main()
