"""The machine and software a run measured, and the method notes written with the figures."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import time
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncjobs

if TYPE_CHECKING:
    from run import Settings

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("sqlalchemy", "aiosqlite", "asyncpg", "pydantic", "anyio")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def commit() -> str:
    """The checkout's commit, ``-dirty`` when measured code (not result files) was changed."""
    try:
        head = _git("describe", "--always")
        changed = _git("status", "--porcelain", "--", "src", "bench/*.py")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("-dirty" if changed else "")


def _git(*args: str) -> str:
    out = subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True, timeout=10
    )
    return out.stdout.strip()


def facts_lines(facts: dict[str, Any], autorun: bool) -> list[str]:
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    load = "{:.2f} {:.2f} {:.2f}"
    return [
        f"Machine: {os.cpu_count()} cores ({cpu_model()}), {platform.platform()}",
        f"Python {platform.python_version()}; SQLite {sqlite3.sqlite_version}; "
        f"PostgreSQL {facts.get('postgres', 'not measured')}",
        f"{versions}",
        f"asyncjobs {commit()} from {_where(Path(asyncjobs.__file__).parent)}; "
        f"autoRun: {'available' if autorun else 'not available'}",
        f"Load average before {load.format(*facts['load_before'])}, "
        f"after {load.format(*facts['load_after'])}; took {facts['seconds']:.0f} s",
    ]


def _where(package: Path) -> str:
    """The measured package: relative to this checkout when it is this checkout's."""
    try:
        return str(package.resolve().relative_to(ROOT))
    except ValueError:
        return "an installed package" if "site-packages" in package.parts else str(package)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def summary(facts: dict[str, Any], autorun: bool) -> str:
    return "\n".join(facts_lines(facts, autorun)) + "\n"


def markdown_head(facts: dict[str, Any], autorun: bool, settings: Settings) -> str:
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    lines = "\n".join(f"- {line}" for line in facts_lines(facts, autorun))
    return (
        "# Benchmark results\n\n"
        f"Measured {when} with `python bench/run.py{_arguments(settings)}`: "
        f"median of {settings.runs} run(s); the per-run values are listed. A `*` marks a run "
        f"cut short by the {settings.cap:g} s time cap (its rate is over the part it did).\n\n"
        f"{lines}"
    )


def _arguments(settings: Settings) -> str:
    from run import WORKLOADS

    parts = [] if settings.runs == 3 else [f"--runs {settings.runs}"]
    if len(settings.backends) == 1:
        parts.append(f"--backend {settings.backends[0]}")
    if settings.only != WORKLOADS:
        parts.append(f"--only {','.join(sorted(settings.only))}")
    return "".join(f" {part}" for part in parts)


def markdown_notes(settings: Settings, setup_seconds: dict[str, float]) -> str:
    setup = "; ".join(
        f"{backend} {settings.scale_rows[backend]:,} rows in {seconds:.1f} s"
        for backend, seconds in setup_seconds.items()
    )
    return f"""## How each figure is measured

- **W1 drain**: {settings.jobs:,} queued single-task no-op jobs (inserted in one statement), then
  `await jobs.run(limit=...)` in a loop until it reports `no_jobs_remaining`, with the default
  settings (`delete_job_on_complete=True`). 4 processes: each loops the same way; timed from the
  moment all are told to go until the last one finds the queue empty.
- **Driver floor (W1)**: the same queue drained by a bare loop on aiosqlite / asyncpg (no
  SQLAlchemy, no asyncjobs): one `UPDATE ... WHERE id IN (SELECT ... LIMIT n [FOR UPDATE SKIP
  LOCKED]) RETURNING` claim, then one fenced `UPDATE` completing the batch, each its own
  autocommit statement; same database, tables and indexes (created by `Store.open()`), same run.
  The SQLAlchemy Core row runs that loop through `engine.begin()` blocks.
- **W2 enqueue**: {settings.one_jobs:,} `queue()` calls one after another, and
  {settings.jobs:,} jobs through `queue_many()` in batches of {settings.batch}, against the
  floors of one `INSERT ... RETURNING id` per job and one {settings.batch}-row insert per batch.
- **W3 latency**: an idle instance with `AutoRun(cron="* * * * * *")` (wake on queue on);
  {settings.samples} probe jobs queued one at a time, each 5 ms after the previous one started
  (or, after one that waited for a tick, at a random moment of the next second, so the samples
  are not in step with the ticks); latency = handler start minus the wall-clock time taken just
  before `queue()`. Two processes (PostgreSQL): queued in this process, run by the idle
  instance in another. At most {settings.latency_cap:g} s per measurement.
- **W4 idle cost**: statements the instance sends (SQLAlchemy's `before_cursor_execute`, plus
  the store's direct driver calls for claims, completions and inserts; a `BEGIN` is not counted
  as a statement; "begin events" are SQLAlchemy's, which a single autocommit statement also
  fires without sending BEGIN) over {settings.idle_seconds:g} s
  of an idle instance with the default settings, in a window that holds no default tick, scaled to
  a minute; then with an every-second entry, per tick. One run (these are counts, not timings).
- **W5 host-loop lag**: a task sleeping 5 ms in a loop on the host loop during W1; lag = how much
  it overslept; p99. The idle-loop row is the same probe for {settings.lag_baseline:g} s with
  nothing else running: what the machine itself adds.
- **W6 scale**: W1 at limit=10 on a table that also keeps finished jobs (every tenth failed),
  bulk-inserted once ({setup}); the queued jobs left over are deleted between runs.
- **W7 slow-job mix**: an app with one `AutoRun(cron="* * * * *", limit=10)` entry (wake on
  queue) and its first tick past; one job sleeping {settings.slow_seconds:g} s, then
  {settings.fast_jobs:,} sleeping {settings.fast_seconds * 1000:g} ms, queued in one `queue_many()`
  call; time from its return until the last fast handler ended. Ideal: every slot kept busy, the
  slow job holding one of them (here {_ideal(settings):.2f} s).
- **W8 autoRun drain**: the same app; {settings.jobs:,} no-op jobs queued in one `queue_many()`
  call; time from its return until every handler ended and no unfinished row is left (polled
  every millisecond once the last handler ended), with W5's probe on the host loop meanwhile.
  Its reference is the driver floor at claim-10/complete-10 measured in the same run (measured
  for W8 and W9 when W1 is not chosen). The pgqueuer comparison is `bench/peers.py`'s.
- **W9 workflows**: {settings.workflow_jobs:,} queued workflows of three no-op steps (queued
  through `queue_many()`, then `ANALYZE` on PostgreSQL), drained like W1 at limit=10; its
  reference is W1 limit=10 of the same run.
- Each throughput measurement stops after {settings.cap:g} s; its rate is then over what it did.
"""


def _ideal(settings: Settings) -> float:
    from autorun_drains import ideal_seconds

    return ideal_seconds(
        fast_jobs=settings.fast_jobs,
        fast_seconds=settings.fast_seconds,
        slow_seconds=settings.slow_seconds,
        limit=10,
    )
