"""Workloads of an idle autoRun runner: W3 enqueue-to-start latency and W4 idle statements."""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from bench_tasks import make_jobs, set_sink
from databases import Database
from measure import Deadline, Latency
from sqlalchemy import event
from workloads import spawn_worker

import asyncjobs

EVERY_SECOND = "* * * * * *"
SAMPLE_GAP = 0.005
TICK_PERIOD = 1.0  # of EVERY_SECOND
TICK_BOUND_MS = 50.0  # a probe that took longer probably waited for a tick
SAMPLE_TIMEOUT = 3.0
SETTLE = 0.3

Enqueue = Callable[[int, float], Awaitable[Any]]
Receive = Callable[[], Awaitable[tuple[int, float]]]


def autorun_available() -> bool:
    """Whether this asyncjobs has the autoRun timers (``asyncjobs.autorun``, once
    ``asyncjobs.scheduler``)."""
    for name in ("asyncjobs.autorun", "asyncjobs.scheduler"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return True
    return False


async def _sample(enqueue: Enqueue, receive: Receive, *, samples: int, cap: float) -> Latency:
    """Queue one probe at a time, each once the previous one started, and collect latencies.

    A probe that waited for a timer tick rather than a wake-up leaves the next one in step with
    the ticks; the next is then queued at a random moment of the following tick period instead.
    """
    found: list[float] = []
    deadline = Deadline(cap)
    for index in range(samples):
        if deadline.passed:
            break
        waited = bool(found) and found[-1] > TICK_BOUND_MS
        await anyio.sleep(SAMPLE_GAP + (random.random() * TICK_PERIOD if waited else 0.0))
        await enqueue(index, time.time())
        with anyio.move_on_after(SAMPLE_TIMEOUT):
            while True:
                seen, latency = await receive()
                if seen == index:
                    found.append(latency * 1000)
                    break
    return Latency(found)


def _enqueuer(jobs: asyncjobs.Jobs) -> Enqueue:
    async def enqueue(index: int, at: float) -> Any:
        return await jobs.queue(task="probe", input={"i": index, "t": at})

    return enqueue


async def w3_local(db: Database, *, samples: int, cap: float) -> Latency:
    """W3 in one process: the runner and the code that queues share the loop."""
    await db.reset()
    send, receive = anyio.create_memory_object_stream[tuple[int, float]](samples + 16)
    jobs = make_jobs(db.url, auto_run=[asyncjobs.AutoRun(cron=EVERY_SECOND)])
    set_sink(lambda index, latency: send.send_nowait((index, latency)))
    await jobs.start()
    try:
        await anyio.sleep(SETTLE)
        return await _sample(_enqueuer(jobs), receive.receive, samples=samples, cap=cap)
    finally:
        set_sink(None)
        await jobs.stop()
        send.close()
        receive.close()


async def w3_processes(db: Database, *, samples: int, cap: float) -> Latency:
    """W3 across processes: queued here, run by an idle runner in another process."""
    await db.reset()
    worker = await spawn_worker("serve", db.url)
    assert worker.stdin is not None and worker.stdout is not None
    stdout = worker.stdout

    async def receive() -> tuple[int, float]:
        index, latency = (await stdout.readline()).split()
        return int(index), float(latency)

    jobs = make_jobs(db.url)
    await jobs.start()
    try:
        await anyio.sleep(SETTLE)
        return await _sample(_enqueuer(jobs), receive, samples=samples, cap=cap)
    finally:
        await jobs.stop()
        worker.stdin.close()
        await worker.wait()


@dataclass
class StatementCounter:
    """Statements and transactions one instance sends.

    Seen through SQLAlchemy events, plus the store's direct driver calls (claim, completion,
    insert), which SQLAlchemy does not see.
    """

    statements: int = 0
    transactions: int = 0

    def attach(self, jobs: asyncjobs.Jobs) -> None:
        engine = jobs.store.engine.sync_engine
        event.listen(engine, "before_cursor_execute", self._on_statement)
        event.listen(engine, "begin", self._on_begin)
        store = jobs.store
        fetch, fetch_claim = store.held.fetch, store._fetch_claim

        async def counted_fetch(sql: str, args: Any, **options: Any) -> Any:
            self.statements += 1
            return await fetch(sql, args, **options)

        async def counted_fetch_claim(sql: str, args: Any, locked: bool) -> Any:
            if locked and store.dialect != "sqlite":  # the lock and the claim, in one transaction
                self.statements += 2
                self.transactions += 1
            return await fetch_claim(sql, args, locked)  # otherwise: one counted fetch

        store.held.fetch = counted_fetch  # type: ignore[method-assign]
        store._fetch_claim = counted_fetch_claim  # type: ignore[method-assign]

    def _on_statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        # SQLite's BEGIN IMMEDIATE is sent as a statement; it is counted as a transaction.
        if not statement.lstrip().upper().startswith("BEGIN"):
            self.statements += 1

    def _on_begin(self, _conn: Any) -> None:
        self.transactions += 1


@dataclass(frozen=True)
class Idle:
    """W4: statements per minute between ticks (default settings), and per tick."""

    between_per_minute: float
    per_tick_statements: float
    per_tick_transactions: float


async def _clear_of_minute(seconds: float) -> None:
    """Wait until a window of ``seconds`` fits before the next whole minute (the default tick)."""
    into = time.time() % 60
    if into + seconds + 1 > 60:
        await anyio.sleep(61 - into)


async def _count_idle(jobs: asyncjobs.Jobs, seconds: float) -> tuple[StatementCounter, int]:
    """Statements over ``seconds`` of idling, and how many ticks ran (calls of ``jobs.run``)."""
    counter, ticks = StatementCounter(), 0
    run = jobs.run

    async def counted_run(**options: Any) -> asyncjobs.RunResult:
        nonlocal ticks
        ticks += 1
        return await run(**options)

    await jobs.start()
    try:
        await anyio.sleep(SETTLE)
        counter.attach(jobs)
        jobs.run = counted_run  # type: ignore[method-assign]
        await anyio.sleep(seconds)
    finally:
        await jobs.stop()
    return counter, ticks


async def w4_idle(db: Database, *, seconds: float) -> Idle:
    """W4 with the default settings, then with an every-second entry to count one tick's cost."""
    await db.reset()
    await _clear_of_minute(seconds + SETTLE)
    default, _ = await _count_idle(make_jobs(db.url, auto_run=None), seconds)
    fast = make_jobs(db.url, auto_run=[asyncjobs.AutoRun(cron=EVERY_SECOND)])
    ticking, ticks = await _count_idle(fast, seconds)
    return Idle(
        between_per_minute=default.statements * 60 / seconds,
        per_tick_statements=ticking.statements / max(ticks, 1),
        per_tick_transactions=ticking.transactions / max(ticks, 1),
    )
