"""Timing helpers: throughput over a capped window, percentiles, and an event-loop lag probe."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from statistics import median

import anyio

LAG_PERIOD = 0.005


@dataclass(frozen=True)
class Rate:
    """``count`` items done in ``seconds``; ``complete`` is False when the time cap cut it short."""

    count: int
    seconds: float
    complete: bool = True

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Drain:
    """One drain: its rate, the host loop's p99 lag meanwhile, and process CPU per job."""

    rate: Rate
    lag_p99_ms: float
    cpu_ms_per_job: float


@dataclass(frozen=True)
class Latency:
    """Enqueue-to-handler-start samples, in milliseconds."""

    samples: Sequence[float]

    @property
    def p50(self) -> float:
        return percentile(self.samples, 50)

    @property
    def p99(self) -> float:
        return percentile(self.samples, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def middle(values: Sequence[float]) -> float:
    """The median of the values that are numbers; NaN when there are none."""
    numbers = [v for v in values if not math.isnan(v)]
    return median(numbers) if numbers else math.nan


class Deadline:
    """A time cap measured on the monotonic clock."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.end = self.start + seconds

    @property
    def passed(self) -> bool:
        return time.perf_counter() >= self.end

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


class LagProbe:
    """Sleeps ``period`` again and again on the host loop and records how much it oversleeps."""

    def __init__(self, period: float = LAG_PERIOD) -> None:
        self.period = period
        self.lags: list[float] = []

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await anyio.sleep(self.period)
            self.lags.append(time.perf_counter() - before - self.period)

    def p99_ms(self) -> float:
        return percentile(self.lags, 99) * 1000

    @classmethod
    @asynccontextmanager
    async def running(cls) -> AsyncIterator[LagProbe]:
        probe = cls()
        async with anyio.create_task_group() as tg:
            tg.start_soon(probe._run)
            yield probe
            tg.cancel_scope.cancel()
