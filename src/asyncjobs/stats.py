"""This process's finished attempts: counts and durations by queue, slug and status.

Kept as plain numbers (``GET /metrics`` turns them into Prometheus families at scrape time),
and only when ``prometheus_client`` is installed: without it nothing could read them.
"""

from __future__ import annotations

import bisect
import importlib.util
import sys
import threading
from dataclasses import dataclass, field

# Upper bounds (seconds) of the duration buckets, as Prometheus clients default them.
BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
Key = tuple[str, str, str]  # (queue, slug, status)


@dataclass
class Durations:
    """One histogram: how many attempts took at most each bucket's bound, and their sum."""

    buckets: list[int] = field(default_factory=lambda: [0] * (len(BUCKETS) + 1))
    count: int = 0
    total: float = 0.0

    def add(self, seconds: float) -> None:
        self.buckets[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.count += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus exposes them, ``+Inf`` last."""
        running, pairs = 0, []
        for bound, hits in zip([*map(str, BUCKETS), "+Inf"], self.buckets, strict=True):
            running += hits
            pairs.append((bound, running))
        return pairs


class Finished:
    """Finished attempts of this process."""

    def __init__(self) -> None:
        self.durations: dict[Key, Durations] = {}
        self._lock = threading.Lock()  # a scrape may read from another thread

    def add(self, queue: str, slug: str, status: str, seconds: float) -> None:
        with self._lock:
            durations = self.durations.get((queue, slug, status))
            if durations is None:
                durations = self.durations[(queue, slug, status)] = Durations()
            durations.add(seconds)

    def snapshot(self) -> dict[Key, Durations]:
        with self._lock:
            return {
                key: Durations(list(d.buckets), d.count, d.total)
                for key, d in self.durations.items()
            }


def prometheus_installed() -> bool:
    try:
        return importlib.util.find_spec("prometheus_client") is not None
    except ValueError:  # imported already, or blocked with ``sys.modules[name] = None``
        return sys.modules.get("prometheus_client") is not None


FINISHED = Finished()
