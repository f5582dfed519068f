"""The tasks the benchmarks queue: no-ops, naps, a probe that reports when its handler starts, and
a 3-step workflow; a tally of handler ends for the workloads that wait for them."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio

import asyncjobs

Sink = Callable[[int, float], None]
_sinks: list[Sink] = []


def set_sink(sink: Sink | None) -> None:
    """Where ``probe`` reports ``(sample index, seconds since it was queued)``."""
    _sinks[:] = [] if sink is None else [sink]


class Tally:
    """Handler ends of ``counted`` and ``nap`` jobs, by kind, and when each kind's target came."""

    def __init__(self, targets: dict[str, int]) -> None:
        self.targets = targets
        self.counts = dict.fromkeys(targets, 0)
        self.reached_at: dict[str, float] = {}
        self._events = {kind: anyio.Event() for kind in targets}

    def add(self, kind: str) -> None:
        self.counts[kind] += 1
        if self.counts[kind] == self.targets[kind]:
            self.reached_at[kind] = time.perf_counter()
            self._events[kind].set()

    async def wait(self, kind: str) -> float:
        """The ``perf_counter`` time at which the last of ``kind`` ended."""
        await self._events[kind].wait()
        return self.reached_at[kind]


_tallies: list[Tally] = []


def set_tally(tally: Tally | None) -> None:
    _tallies[:] = [] if tally is None else [tally]


def _count(kind: str) -> None:
    for tally in _tallies:
        tally.add(kind)


@asyncjobs.task("noop")
async def noop() -> None:
    return None


@asyncjobs.task("counted")
async def counted() -> None:
    """A no-op that the tally counts (kind ``"done"``)."""
    _count("done")


@asyncjobs.task("nap")
async def nap(*, input: dict[str, Any]) -> None:
    """Sleep ``input["s"]`` seconds, then count as ``input["kind"]``."""
    await anyio.sleep(float(input["s"]))
    _count(str(input["kind"]))


@asyncjobs.task("probe")
async def probe(*, input: dict[str, Any]) -> None:
    started = time.time()
    for sink in _sinks:
        sink(int(input["i"]), started - float(input["t"]))


@asyncjobs.workflow("three-steps")
async def three_steps(*, tasks: Any) -> None:
    """Three no-op steps in a row, each its own memoized step."""
    for step in ("1", "2", "3"):
        await tasks["noop"](step)


def make_jobs(url: str, **options: Any) -> asyncjobs.Jobs:
    """A ``Jobs`` with the default settings, except no autoRun unless ``auto_run`` is given."""
    options.setdefault("auto_run", [])
    return asyncjobs.Jobs(
        tasks=[noop, counted, nap, probe], workflows=[three_steps], database_url=url, **options
    )
