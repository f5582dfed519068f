"""A benchmark worker process.

``python bench/worker.py drain URL LIMIT CAP``: open, print ``ready``, wait for ``go`` on stdin,
drain the queue, print ``{"done": N, "end": wall-clock time}``.
``python bench/worker.py serve URL``: start with an every-second autoRun entry, print ``ready``,
print ``INDEX LATENCY`` for every ``probe`` job its handler starts, stop when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bench_tasks import make_jobs, set_sink
from workloads import drain

import asyncjobs

EVERY_SECOND = "* * * * * *"


async def _stdin() -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve_drain(url: str, limit: int, cap: float) -> None:
    jobs = make_jobs(url)
    await jobs.start()
    reader = await _stdin()
    _say("ready")
    await reader.readline()
    try:
        rate = await drain(jobs, limit=limit, n=0, cap=cap)
        end = time.time()
    finally:
        await jobs.stop()
    _say(json.dumps({"done": rate.count, "end": end}))


async def serve_probes(url: str) -> None:
    jobs = make_jobs(url, auto_run=[asyncjobs.AutoRun(cron=EVERY_SECOND)])
    set_sink(lambda index, latency: _say(f"{index} {latency}"))
    await jobs.start()
    reader = await _stdin()
    _say("ready")
    try:
        await reader.read()
    finally:
        await jobs.stop()


def main(argv: list[str]) -> None:
    mode, url = argv[0], argv[1]
    if mode == "drain":
        asyncio.run(serve_drain(url, int(argv[2]), float(argv[3])))
    elif mode == "serve":
        asyncio.run(serve_probes(url))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
