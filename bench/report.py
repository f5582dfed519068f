"""What each figure means, its target from the task, and the table printed and written."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from measure import middle

BACKENDS = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
ANALYSIS_HEADING = "## Where the time goes"
Check = Callable[[str, float, float], bool]


@dataclass
class Results:
    """Per-run values of every figure, by backend and key; ``False`` in ``complete`` marks a
    run that the time cap cut short (its rate is over the part it did)."""

    values: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    complete: dict[tuple[str, str], list[bool]] = field(default_factory=lambda: defaultdict(list))
    missing: dict[tuple[str, str], str] = field(default_factory=dict)

    def add(self, backend: str, key: str, value: float, complete: bool = True) -> None:
        self.values[backend, key].append(value)
        self.complete[backend, key].append(complete)

    def median(self, backend: str, key: str) -> float:
        return middle(self.values.get((backend, key), []))

    def ratio(self, backend: str, key: str, reference: str) -> float:
        """The median of the per-run ratios: the machine is noisy, ratios in one run matter."""
        mine = self.values.get((backend, key), [])
        theirs = self.values.get((backend, reference), [])
        return middle([a / b for a, b in zip(mine, theirs, strict=False) if b])


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    target: str = "—"
    check: Check | None = None
    reference: str | None = None
    reference_label: str = ""
    backends: tuple[str, ...] = ("sqlite", "postgres")


def _w1(backend: str, value: float, ratio: float) -> bool:
    if backend == "sqlite":
        return value >= 3500
    return value >= 2500 and ratio >= 0.25


def _w1_10(backend: str, value: float, ratio: float) -> bool:
    """W1 at limit=10 is also held to half of the SQLite driver's own loop."""
    return _w1(backend, value, ratio) and (backend != "sqlite" or ratio >= 0.5)


def _w8(backend: str, _value: float, ratio: float) -> bool:
    return ratio >= (0.5 if backend == "sqlite" else 0.9)


def _ratio_at_least(bound: float) -> Check:
    return lambda _backend, _value, ratio: ratio >= bound


def _at_least(bound: float) -> Check:
    return lambda _backend, value, _ratio: value >= bound


def _at_most(bound: float) -> Check:
    return lambda _backend, value, _ratio: value <= bound


W1_TARGET = "SQLite ≥ 3,500; PostgreSQL ≥ 2,500 and ≥ 25% of floor"
W1_10_TARGET = "SQLite ≥ 3,500 and ≥ 50% of floor; PostgreSQL ≥ 2,500 and ≥ 25% of floor"
W8_TARGET = (
    "SQLite ≥ 50% of floor; PostgreSQL ≥ 90% of floor and ≥ 1.5x pgqueuer batch 10 (bench/peers.py)"
)
FLOOR_10 = "driver claim-10/complete-10"
W1_10_SAME_RUN = "W1 limit=10, same run"
METRICS: tuple[Metric, ...] = (
    Metric(
        "w1_10",
        "W1 drain, 1 process, run(limit=10)",
        "jobs/s",
        W1_10_TARGET,
        _w1_10,
        "floor_10",
        FLOOR_10,
    ),
    Metric(
        "w1_100",
        "W1 drain, 1 process, run(limit=100)",
        "jobs/s",
        W1_TARGET,
        _w1,
        "floor_100",
        "driver claim-100/complete-100",
    ),
    Metric(
        "w1_procs",
        "W1 drain, {procs} processes, run(limit=10)",
        "jobs/s",
        reference="floor_10",
        reference_label=FLOOR_10 + ", 1 process",
        backends=("postgres",),
    ),
    Metric(
        "core_10",
        "claim-10/complete-10 via SQLAlchemy Core, no asyncjobs",
        "jobs/s",
        reference="floor_10",
        reference_label=FLOOR_10,
    ),
    Metric(
        "w2_one",
        "W2 queue(), one by one",
        "jobs/s",
        "≥ 1,500",
        _at_least(1500),
        "floor_one",
        "driver INSERT ... RETURNING, one by one",
    ),
    Metric(
        "w2_many",
        "W2 queue_many(), batches of 100",
        "jobs/s",
        "≥ 20,000",
        _at_least(20000),
        "floor_many",
        "driver 100-row INSERT ... RETURNING",
    ),
    Metric("w3_p50", "W3 enqueue→start p50, 1 process", "ms", "≤ 3 ms", _at_most(3)),
    Metric("w3_p99", "W3 enqueue→start p99, 1 process", "ms"),
    Metric(
        "w3x_p50",
        "W3 enqueue→start p50, 2 processes",
        "ms",
        "≤ 15 ms",
        _at_most(15),
        backends=("postgres",),
    ),
    Metric("w3x_p99", "W3 enqueue→start p99, 2 processes", "ms", backends=("postgres",)),
    Metric(
        "w4_between",
        "W4 idle statements/min between ticks (default settings)",
        "stmts/min",
        "0",
        _at_most(0),
    ),
    Metric("w4_tick", "W4 statements per idle autoRun tick", "stmts", "≤ 1", _at_most(1)),
    Metric("w4_tick_tx", "W4 SQLAlchemy begin events per idle autoRun tick", "begins"),
    Metric("w5_10", "W5 host-loop lag p99 during W1 limit=10", "ms", "≤ 10 ms", _at_most(10)),
    Metric("w5_100", "W5 host-loop lag p99 during W1 limit=100", "ms", "≤ 10 ms", _at_most(10)),
    Metric("w5_idle", "W5 host-loop lag p99 of an idle loop (the machine's own noise)", "ms"),
    Metric(
        "w6",
        "W6 drain, limit=10, over {scale} finished jobs",
        "jobs/s",
        "≥ 80% of W1 limit=10",
        _ratio_at_least(0.8),
        "w1_10",
        W1_10_SAME_RUN,
    ),
    Metric(
        "w7",
        "W7 slow-job mix, autoRun limit=10: 1 job of {slow} s + {fast} of {fast_ms} ms, "
        "fast ones done after",
        "s",
        reference="w7_ideal",
        reference_label="ideal: every slot kept busy",
    ),
    Metric("w7_over", "W7 fast ones done, over the ideal", "s", "≤ 0.5 s", _at_most(0.5)),
    Metric(
        "w8",
        "W8 autoRun drain, limit=10: {jobs} jobs queue_many()'d into an idle app",
        "jobs/s",
        W8_TARGET,
        _w8,
        "floor_10",
        FLOOR_10,
    ),
    Metric("w5_w8", "W5 host-loop lag p99 during W8", "ms", "≤ 10 ms", _at_most(10)),
    Metric(
        "w9",
        "W9 drain of {workflows} 3-step workflows, run(limit=10)",
        "jobs/s",
        "≥ 50% of W1 limit=10",
        _ratio_at_least(0.5),
        "w1_10",
        W1_10_SAME_RUN,
    ),
    Metric("cpu_10", "process CPU per job during W1 limit=10", "ms/job"),
)


def number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "jobs/s":
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}" if abs(value) < 10 else f"{value:.1f}"


@dataclass(frozen=True)
class Row:
    label: str
    backend: str
    median: str
    runs: str
    reference: str
    ratio: str
    target: str
    verdict: str


def rows(
    results: Results,
    scale: Mapping[str, str],
    fields: Mapping[str, str],
    metrics: Sequence[Metric] = METRICS,
) -> list[Row]:
    """Table rows; ``scale`` (finished rows per backend) and ``fields`` (the process count and
    the workloads' sizes) fill in the labels."""
    found = []
    for metric in metrics:
        for backend in metric.backends:
            if (backend, metric.key) in results.values or (backend, metric.key) in results.missing:
                label = metric.label.format(scale=scale.get(backend, ""), **fields)
                found.append(_row(results, metric, backend, label))
    return found


def _row(results: Results, metric: Metric, backend: str, label: str) -> Row:
    missing = results.missing.get((backend, metric.key))
    if missing is not None:
        return Row(label, BACKENDS[backend], missing, "", "", "", metric.target, "n/a")
    value = results.median(backend, metric.key)
    runs = ", ".join(
        number(v, metric.unit) + ("*" if not ok else "")
        for v, ok in zip(
            results.values[backend, metric.key], results.complete[backend, metric.key], strict=True
        )
    )
    reference, ratio_text, ratio = "", "", math.nan
    if metric.reference is not None:
        ref = results.median(backend, metric.reference)
        ratio = results.ratio(backend, metric.key, metric.reference)
        reference = f"{number(ref, metric.unit)} ({metric.reference_label})"
        ratio_text = (
            "n/a" if math.isnan(ratio) else f"{ratio:.1%}" if ratio < 0.1 else f"{ratio:.0%}"
        )
    verdict = "—"
    if metric.check is not None and not math.isnan(value):
        verdict = "met" if metric.check(backend, value, ratio) else "missed"
    return Row(
        label,
        BACKENDS[backend],
        f"{number(value, metric.unit)} {metric.unit}",
        runs,
        reference,
        ratio_text,
        metric.target,
        verdict,
    )


HEADERS = ("Workload", "Backend", "Median", "Runs", "Reference", "Ratio", "Target", "Verdict")


def markdown_table(found: Sequence[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for row in found:
        lines.append("| " + " | ".join(_cells(row)) + " |")
    return "\n".join(lines)


def _cells(row: Row) -> list[str]:
    return [
        row.label,
        row.backend,
        row.median,
        row.runs,
        row.reference,
        row.ratio,
        row.target,
        row.verdict,
    ]


def text_table(found: Sequence[Row]) -> str:
    """The console table: the long reference label is left to RESULTS.md."""
    picked = [
        (r.label, r.backend, r.median, r.reference.split(" (")[0], r.ratio, r.verdict)
        for r in found
    ]
    header = ("Workload", "Backend", "Median", "Ref.", "Ratio", "Verdict")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *picked, strict=True)]
    out = []
    for line in (header, *picked):
        out.append("  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    return "\n".join(out)


def write_markdown(path: Path, head: str, table: str, notes: str) -> None:
    """Write the measured part; keep a hand-written analysis section that follows it."""
    analysis = ""
    if path.exists():
        text = path.read_text()
        at = text.find(ANALYSIS_HEADING)
        if at >= 0:
            analysis = "\n" + text[at:].rstrip() + "\n"
    path.write_text(f"{head}\n\n{table}\n\n{notes}\n{analysis}")
