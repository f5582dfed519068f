"""The tasks the benchmarks queue: a no-op, and a probe that reports when its handler starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import asyncjobs

Sink = Callable[[int, float], None]
_sinks: list[Sink] = []


def set_sink(sink: Sink | None) -> None:
    """Where ``probe`` reports ``(sample index, seconds since it was queued)``."""
    _sinks[:] = [] if sink is None else [sink]


@asyncjobs.task("noop")
async def noop() -> None:
    return None


@asyncjobs.task("probe")
async def probe(*, input: dict[str, Any]) -> None:
    started = time.time()
    for sink in _sinks:
        sink(int(input["i"]), started - float(input["t"]))


def make_jobs(url: str, **options: Any) -> asyncjobs.Jobs:
    """A ``Jobs`` with the default settings, except no autoRun unless ``auto_run`` is given."""
    options.setdefault("auto_run", [])
    return asyncjobs.Jobs(tasks=[noop, probe], database_url=url, **options)
