"""``GET /metrics`` in Prometheus text format (extra ``asyncjobs[prometheus]``).

Families are built at scrape time: unfinished jobs by queue and status and each queue's oldest
runnable job, from one statement over the runnable-jobs index; attempts that ended in this
process, by queue, slug and status, from ``asyncjobs.stats``. Finished jobs are not counted
in the database, where a table keeping millions of them would make every scrape slow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from asyncjobs import stats
from asyncjobs.storage import Store
from asyncjobs.storage.monitoring import QueueCount, queue_counts

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what every Prometheus reads
UNFINISHED = ("queued", "waiting", "suspended", "processing")


async def exposition(store: Store, now: datetime) -> bytes:
    """The text a scrape gets.

    Raises:
        StorageError: the database could not be read.
    """
    counts = await queue_counts(store, now)
    families = [*queue_families(counts, now), *finished_families(stats.FINISHED.snapshot())]
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families))
    return generate_latest(registry)


def queue_families(counts: Sequence[QueueCount], now: datetime) -> list[Metric]:
    jobs = GaugeMetricFamily(
        "asyncjobs_jobs",
        "Unfinished jobs by queue and status (queued, waiting, suspended, processing)",
        labels=["queue", "status"],
    )
    oldest = GaugeMetricFamily(
        "asyncjobs_oldest_runnable_job_age_seconds",
        "Seconds since the oldest runnable job of each queue became due",
        labels=["queue"],
    )
    for queue in sorted({count.queue for count in counts}):
        found = {c.status: c for c in counts if c.queue == queue}
        for status in UNFINISHED:
            jobs.add_metric([queue, status], found[status].count if status in found else 0)
        due = found["queued"].oldest_due if "queued" in found else None
        oldest.add_metric([queue], max((now - due).total_seconds(), 0.0) if due else 0.0)
    return [jobs, oldest]


def finished_families(finished: dict[stats.Key, stats.Durations]) -> list[Metric]:
    labels = ["queue", "slug", "status"]
    total = CounterMetricFamily(
        "asyncjobs_jobs_finished",
        "Job attempts that ended in this process, by the status they left the job in",
        labels=labels,
    )
    durations = HistogramMetricFamily(
        "asyncjobs_job_duration_seconds",
        "Seconds job attempts took in this process, from claim to recorded outcome",
        labels=labels,
    )
    for key, recorded in sorted(finished.items()):
        total.add_metric(list(key), recorded.count)
        durations.add_metric(list(key), recorded.cumulative(), recorded.total)
    return [total, durations]


class _Families(Collector):
    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self.families)
