"""Profile the W1 drain (or W9's, ``--workflow``): statements per job, CPU per job, and where
the time goes.

    python bench/profile_drain.py [--backend sqlite|postgres] [--jobs N] [--limit N]
                                  [--tool cprofile|pyinstrument|none] [--what-if]
                                  [--workflow] [--save DIR]

First an unprofiled drain counts, per job: statements, transactions, connections opened and
driver calls (aiosqlite thread hops, asyncpg round trips), and the process CPU. Then a second
drain of the same size runs under the profiler: cProfile gives call counts and on-loop CPU per
function; pyinstrument (``pip install pyinstrument``) gives wall time, awaits included.
``--what-if`` re-runs the drain with the jobs of a batch run one at a time. (Skipping writes is
no what-if: rows left leased slow every later claim.)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import os
import pstats
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiosqlite.core
import asyncpg.connection
import asyncpg.prepared_stmt
from bench_tasks import make_jobs
from databases import Database, Databases
from measure import LagProbe
from run import DEFAULT_POSTGRES_URL, POSTGRES_ENV
from sqlalchemy import event

import asyncjobs
import asyncjobs.storage.common

HERE = Path(__file__).resolve().parent


class Counts:
    """Statements by kind, transactions and new connections of one engine, via its events."""

    def __init__(self, jobs: asyncjobs.Jobs) -> None:
        self.kinds: Counter[str] = Counter()
        engine = jobs.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._statement)
        event.listen(engine, "begin", lambda _conn: self.kinds.update(["(SQLAlchemy begin)"]))
        event.listen(engine, "connect", lambda *_: self.kinds.update(["(new connection)"]))

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        words = statement.split()
        self.kinds[" ".join(words[:2] if words[0] in ("UPDATE", "BEGIN") else words[:1])] += 1


def _patch(cls: Any, name: str, count: Callable[..., str]) -> Callable[[], None]:
    original = getattr(cls, name)

    async def counted(*args: Any, **kwargs: Any) -> Any:
        _driver_calls[count(*args)] += 1
        return await original(*args, **kwargs)

    setattr(cls, name, counted)
    return lambda: setattr(cls, name, original)


_driver_calls: Counter[str] = Counter()


@contextmanager
def driver_calls() -> Iterator[Counter[str]]:
    """Count aiosqlite thread hops and asyncpg round trips (BEGIN/COMMIT, prepare, execute)."""
    _driver_calls.clear()
    undo = [
        _patch(
            aiosqlite.core.Connection, "_execute", lambda _c, fn, *_: f"aiosqlite hop: {_fn(fn)}"
        ),
        _patch(
            asyncpg.connection.Connection, "execute", lambda _c, q, *_: f"asyncpg: {q.split()[0]}"
        ),
        _patch(
            asyncpg.connection.Connection, "fetch", lambda _c, q, *_: f"asyncpg: {q.split()[0]}"
        ),
        _patch(asyncpg.connection.Connection, "prepare", lambda *_: "asyncpg: prepare"),
        _patch(asyncpg.prepared_stmt.PreparedStatement, "fetch", lambda *_: "asyncpg: execute"),
    ]
    try:
        yield _driver_calls
    finally:
        for restore in undo:
            restore()


def _fn(fn: Any) -> str:
    name = getattr(fn, "__name__", None) or getattr(getattr(fn, "func", None), "__name__", "?")
    return str(name)


WORKFLOW = False  # --workflow: drain W9's 3-step workflows instead of W1's single tasks


async def _filled(db: Database, n: int) -> asyncjobs.Jobs:
    await db.reset()
    if not WORKFLOW:
        await db.driver.fill_queued(n)
    jobs = make_jobs(db.url)
    await jobs.start()
    for start in range(0, n if WORKFLOW else 0, 500):
        await jobs.queue_many([{"workflow": "three-steps"}] * min(500, n - start))
    return jobs


async def drain_all(jobs: asyncjobs.Jobs, limit: int, sequential: bool = False) -> int:
    done = 0
    while True:
        result = await jobs.run(limit=limit, sequential=sequential)
        if result.no_jobs_remaining:
            return done
        done += len(result.job_status)


class Collections:
    """The cyclic garbage collector's runs during a drain: the host loop stalls while it runs."""

    def __init__(self) -> None:
        self.runs: list[tuple[int, float, int]] = []
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            elapsed = time.perf_counter() - self._started
            self.runs.append((info["generation"], elapsed, info["collected"]))

    @contextmanager
    def recording(self) -> Iterator[Collections]:
        gc.callbacks.append(self)
        try:
            yield self
        finally:
            gc.callbacks.remove(self)

    def summary(self, n: int) -> list[str]:
        freed = sum(collected for _, _, collected in self.runs)
        lines = [f"  {freed / n:6.1f}  objects freed by the cyclic garbage collector"]
        for generation in (0, 1, 2):
            times = [t * 1000 for g, t, _ in self.runs if g == generation]
            if times:
                lines.append(
                    f"  gc generation {generation}: {len(times)} runs, longest {max(times):.1f} ms"
                )
        return lines


_store_time: Counter[str] = Counter()


@contextmanager
def store_time() -> Iterator[Counter[str]]:
    """Wall time spent inside each ``Store`` method (a drain runs one batch at a time)."""
    _store_time.clear()
    store = asyncjobs.storage.common.SqlStore
    undo = []
    for name in ("claim", "finish_owned", "update_owned", "renew", "owned", "release", "delete"):
        if hasattr(store, name):
            undo.append(_timed(store, name))
    try:
        yield _store_time
    finally:
        for restore in undo:
            restore()


def _timed(cls: Any, name: str) -> Callable[[], None]:
    original = getattr(cls, name)

    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await original(*args, **kwargs)
        finally:
            _store_time[f"Store.{name}"] += time.perf_counter() - started

    setattr(cls, name, timed)
    return lambda: setattr(cls, name, original)


async def counted(db: Database, n: int, limit: int) -> str:
    jobs = await _filled(db, n)
    counts = Counts(jobs)
    with driver_calls() as calls, Collections().recording() as collections, store_time() as spent:
        async with LagProbe.running() as probe:
            wall, cpu = time.perf_counter(), time.process_time()
            done = await drain_all(jobs, limit)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await jobs.stop()
    lines = [
        f"{done:,} jobs at limit={limit}: {done / wall:,.0f} jobs/s; per job "
        f"{wall * 1e6 / n:,.0f} µs wall, {cpu * 1e6 / n:,.0f} µs process CPU; "
        f"host-loop lag p99 {probe.p99_ms():.1f} ms, max {max(probe.lags) * 1000:.1f} ms",
        "per job:",
    ]
    for kind, count in [*counts.kinds.most_common(), *calls.most_common()]:
        lines.append(f"  {count / n:6.2f}  {kind}")
    lines.append("wall time per job inside the store (the rest is the runner, handlers, loop):")
    for name, seconds in spent.most_common():
        lines.append(f"  {seconds * 1e6 / n:6.0f} µs  {name}")
    return "\n".join(lines + collections.summary(n))


async def profiled(db: Database, n: int, limit: int, tool: str) -> str:
    jobs = await _filled(db, n)
    try:
        if tool == "pyinstrument":
            return await _pyinstrument(jobs, limit)
        return await _cprofile(jobs, limit)
    finally:
        await jobs.stop()


async def _cprofile(jobs: asyncjobs.Jobs, limit: int) -> str:
    profile = cProfile.Profile()
    profile.enable()
    done = await drain_all(jobs, limit)
    profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    out.write(by_component(stats, done))
    stats.strip_dirs().sort_stats("tottime").print_stats(40)
    return out.getvalue()


def component(filename: str, function: str) -> str:
    """Which library (or asyncjobs module) a profiled function belongs to."""
    if filename == "~":
        return f"(built-in) {function.split(' of ')[0].strip('<>{}')}"
    path = Path(filename)
    parts = path.parts
    if "asyncjobs" in parts:
        return "asyncjobs." + path.stem
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].split(".")[0]
    if path.parent.name.startswith("python3"):
        return f"stdlib {path.stem}"
    if len(parts) > 1 and parts[-2] in ("asyncio", "concurrent", "json", "logging"):
        return f"stdlib {parts[-2]}"
    return path.name


def by_component(stats: pstats.Stats, jobs: int, unit: str = "job") -> str:
    """Own time per job (or per ``unit``), summed by component: where the on-loop CPU goes."""
    totals: Counter[str] = Counter()
    for (filename, _line, function), row in stats.stats.items():  # type: ignore[attr-defined]
        totals[component(filename, function)] += row[2]
    lines = [f"own time by component (cProfile, µs per {unit} over {jobs:,} {unit}s):"]
    for name, seconds in totals.most_common(25):
        lines.append(f"  {seconds * 1e6 / max(jobs, 1):8.1f}  {name}")
    return "\n".join(lines) + "\n\n"


async def _pyinstrument(jobs: asyncjobs.Jobs, limit: int) -> str:
    from pyinstrument import Profiler

    profiler = Profiler(async_mode="enabled", interval=0.0005)
    profiler.start()
    await drain_all(jobs, limit)
    profiler.stop()
    return str(profiler.output_text(unicode=True, show_all=False))


@contextmanager
def _patched(target: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(target, name)
    setattr(target, name, value)
    try:
        yield
    finally:
        setattr(target, name, original)


async def what_if(db: Database, n: int, limit: int) -> str:
    """Drain rates with parts of the current core changed, to size what each would gain."""
    cases: list[tuple[str, Any, bool]] = [
        ("as is", None, False),
        ("jobs of a batch run one at a time (sequential=True)", None, True),
    ]
    lines = [f"what if (limit={limit}, {n:,} jobs):"]
    for label, patch, sequential in cases:
        if patch is not None and not hasattr(patch[0], patch[1]):
            lines.append(f"  {label}: not applicable to this core")
            continue
        with _patched(*patch) if patch else _nothing():
            jobs = await _filled(db, n)
            wall, cpu = time.perf_counter(), time.process_time()
            done = await drain_all(jobs, limit, sequential)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            await jobs.stop()
        lines.append(f"  {done / wall:7,.0f} jobs/s  {cpu * 1e6 / done:6,.0f} µs CPU/job  {label}")
    print("\n".join(lines), flush=True)
    return "\n".join(lines)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


async def main_async(args: argparse.Namespace) -> str:
    databases = Databases(args.postgres_url)
    parts = []
    try:
        db = await databases.make(args.backend, "profile")
        parts.append(await counted(db, args.jobs, args.limit))
        print(parts[-1], flush=True)
        if args.what_if:
            parts.append(await what_if(db, args.jobs, args.limit))
        if args.tool != "none":
            parts.append(await profiled(db, args.jobs, args.limit, args.tool))
            print(parts[-1], flush=True)
    finally:
        await databases.close()
    return "\n\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--jobs", type=int, default=2_000)
    parser.add_argument("--limit", type=int, default=10)
    parser.add_argument("--tool", choices=("cprofile", "pyinstrument", "none"), default="cprofile")
    parser.add_argument("--what-if", action="store_true")
    parser.add_argument("--workflow", action="store_true", help="3-step workflows (W9)")
    parser.add_argument(
        "--postgres-url", default=os.environ.get(POSTGRES_ENV) or DEFAULT_POSTGRES_URL
    )
    parser.add_argument("--save", type=Path, help="also write the output to DIR/<name>.txt")
    args = parser.parse_args(argv)
    global WORKFLOW
    WORKFLOW = args.workflow
    text = asyncio.run(main_async(args))
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        workload = "w9" if args.workflow else "w1"
        name = f"{workload}-{args.backend}-limit{args.limit}-{args.tool}.txt"
        (args.save / name).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
