"""autoRun: cron timers that handle schedules and run due jobs inside the host event loop.

APScheduler only keeps time here, through its public API: an ``AsyncIOScheduler`` on the host
loop, one job per entry on our own ``CronTrigger`` (crontab semantics from ``cron.py``), whose
function is a coroutine that only wakes the entry's lane (the default ``AsyncIOExecutor`` runs
it as a task on the loop, never in a thread). Each lane is a loop in a task group we own that
runs one tick at a time, so a tick never overlaps the previous one, and wakes that arrive
during a tick (a timer, the wake bus, a job ending) fold into exactly one more tick right after
it. A tick claims jobs only for the entry's free slots (``asyncjobs.slots``) and does not wait
for them: they run in the lane's slots while the lane waits for its next wake, and each job
that ends frees its slot and, while jobs may be waiting, wakes the lane to claim again.

That task group lives in the one task this module starts with ``create_task``: the scheduler
is asyncio-bound anyway, and ``start()`` and ``stop()`` are separate calls of the host, so no
anyio task group could span them without wrapping the host's own code.

APScheduler's executor logs two INFO records per fire ("Running job ...", "... executed
successfully") on ``apscheduler.executors.<alias>``; the executor is added under its own
alias, ``EXECUTOR``, whose logger is set to WARNING so a tick every second does not flood an
app that logs INFO (its warnings and errors still show). The scheduler's own records go to
``asyncjobs.autorun.timers``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from functools import partial
from typing import Any, Protocol

import anyio
from apscheduler.executors.asyncio import AsyncIOExecutor
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from asyncjobs import health, logs
from asyncjobs.cron import Cron, parse
from asyncjobs.definitions import AutoRun
from asyncjobs.logs import Silent
from asyncjobs.slots import Slots
from asyncjobs.wake import ANY_QUEUE, Wake, WakeBus

LOGGER_NAME = "asyncjobs.autorun"
logger = logging.getLogger(LOGGER_NAME)
TICK_ERROR = "Error in job queue cron job handler"
MAX_DUE_TIMES = 10_000  # due times a lane remembers; later ones wait for a cron tick
CLOSE_GRACE = 1.0  # how long close() lets a tick finish its last writes before cancelling it
EXECUTOR = "asyncjobs"  # APScheduler logs each run on "apscheduler.executors.<this alias>"
# Fires are idempotent wakes: never let APScheduler skip one (with a warning) because an
# earlier fire's task has not had its turn on a busy loop yet.
MAX_INSTANCES = 1_000
logging.getLogger(f"apscheduler.executors.{EXECUTOR}").setLevel(logging.WARNING)
Listen = Callable[[Wake, Callable[[str], None]], Awaitable[None]]


class CronTrigger(BaseTrigger):  # type: ignore[misc]
    """An APScheduler 3 trigger on our crontab semantics.

    APScheduler's own ``CronTrigger`` numbers Monday 0 and always ANDs day-of-month with
    day-of-week, so crontab expressions would fire on the wrong days.
    """

    __slots__ = ("cron", "zone")

    def __init__(self, cron: Cron, zone: tzinfo | None = None) -> None:
        self.cron, self.zone = cron, zone

    def get_next_fire_time(
        self, previous_fire_time: datetime | None, now: datetime
    ) -> datetime | None:
        """The first fire time after ``now`` (and after ``previous_fire_time``).

        Fire times missed while the loop was busy are not replayed one by one: the wake being
        delivered already covers them.
        """
        after = now if previous_fire_time is None else max(previous_fire_time, now)
        try:
            return self.cron.next_after(after, self.zone)
        except ValueError:  # the expression never fires again
            return None

    def __repr__(self) -> str:
        return f"CronTrigger({self.cron.expr!r})"


class _Lane:
    """One ``AutoRun`` entry: its pending wake, the due times it knows of, what it covers."""

    def __init__(self, entry: AutoRun, index: int, clock: Callable[[], datetime]) -> None:
        self.entry = entry
        self.name = f"asyncjobs-autorun-{index}"
        self.clock = clock
        self._signal = anyio.Event()
        self._woken = False
        self._cron = False  # the entry's cron fired since the last tick began
        self._due: list[datetime] = []  # a heap of times at which jobs fall due
        # A job ending wakes the lane to claim for its slot: only with ``wake_on_queue``, as
        # without it the entry runs jobs at its cron times alone.
        self.slots = Slots(entry.limit, on_free=self.wake_after if entry.wake_on_queue else None)

    def wake(self) -> None:
        self._woken = True
        self._signal.set()

    def fire(self) -> None:
        """The entry's cron time: a tick that also handles schedules."""
        self._cron = True
        self.wake()

    def wake_at(self, when: datetime) -> None:
        """Tick when ``when`` comes (a ``wait_until``, a retry's backoff), not at the next cron."""
        if when <= self.clock():
            self.wake()
        elif len(self._due) < MAX_DUE_TIMES:  # past that, the cron ticks cover the rest
            heapq.heappush(self._due, when)
            self._signal.set()

    def wake_after(self, seconds: float) -> None:
        """A slot is free: tick now, or ``seconds`` later to claim for more slots at once."""
        if seconds > 0:
            self.wake_at(self.clock() + timedelta(seconds=seconds))
        else:
            self.wake()

    async def wait(self) -> bool:
        """Return at the next wake, or when the earliest known due time has come.

        Returns whether the cron fired meanwhile: schedules fall due only at cron times, so
        ticks woken by queued or due jobs leave them alone.
        """
        while not self._woken:
            delay = (self._due[0] - self.clock()).total_seconds() if self._due else math.inf
            if delay <= 0:
                break
            with anyio.move_on_after(delay):
                await self._signal.wait()
            self._signal = anyio.Event()
        self._woken = False
        now = self.clock()
        while self._due and self._due[0] <= now:
            heapq.heappop(self._due)
        fired, self._cron = self._cron, False
        return fired

    def covers(self, queue: str) -> bool:
        entry = self.entry
        return entry.wake_on_queue and (entry.all_queues or queue in (entry.queue, ANY_QUEUE))

    def notice(self, queue: str, due: datetime | None) -> None:
        """New or retried jobs on ``queue``, runnable at ``due`` (now when ``None``)."""
        if self.covers(queue):
            self.wake() if due is None else self.wake_at(due)


class TickHost(Protocol):
    """The calls a tick makes on the ``Jobs`` it serves."""

    async def auto_run_allowed(self) -> bool: ...

    async def handle_schedules(self, *, queue: str, all_queues: bool) -> Any: ...

    async def fill_slots(
        self, free: Slots, *, queue: str, all_queues: bool, silent: Silent
    ) -> int: ...

    async def prune_if_due(self) -> int: ...


async def _fire(lane: _Lane) -> None:
    """What a timer runs: a coroutine, so APScheduler's executor runs it on the loop."""
    lane.fire()


class AutoRunner:
    """The autoRun entries of one ``Jobs``: timers plus one tick loop per entry.

    Lanes of entries with ``wake_on_queue`` subscribe to ``bus``; ``listen`` (PostgreSQL's
    NOTIFY listener, ``None`` without one) feeds the bus with jobs other processes queue.
    ``stop()`` removes the timers and starts no further tick; a tick already running jobs is
    left to ``Jobs.stop()``'s drain, and ``close()`` then waits for the loops to end.
    """

    def __init__(
        self,
        jobs: TickHost,
        *,
        clock: Callable[[], datetime],
        bus: WakeBus,
        listen: Listen | None = None,
    ) -> None:
        self.jobs, self.clock, self.bus, self.listen = jobs, clock, bus, listen
        self._lanes: list[_Lane] = []
        self._timers: AsyncIOScheduler | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._ended = anyio.Event()
        self._cancel = anyio.CancelScope()  # may be cancelled before the lanes even start
        self._listener = anyio.CancelScope()
        self._stopping = False

    @property
    def _wakes_on_queue(self) -> bool:
        return any(lane.entry.wake_on_queue for lane in self._lanes)

    async def start(self, entries: Sequence[AutoRun]) -> None:
        """Install one timer per entry, and subscribe to the bus for ``wake_on_queue``.

        Each entry ticks once at once, so jobs already due (a backlog, or jobs another instance
        handed back when it stopped) start now rather than at the entry's next cron time.
        """
        self._lanes = [_Lane(entry, index, self.clock) for index, entry in enumerate(entries)]
        for lane in self._lanes:
            lane.fire()
        self._task = asyncio.get_running_loop().create_task(self._serve(), name="asyncjobs-autorun")
        self._timers = self._install_timers()
        if self._wakes_on_queue:
            self._unsubscribe = self.bus.subscribe(self._notice)

    def _install_timers(self) -> AsyncIOScheduler:
        timers = AsyncIOScheduler(
            timezone=UTC,
            logger=logging.getLogger(f"{LOGGER_NAME}.timers"),
            executors={EXECUTOR: AsyncIOExecutor()},
        )
        timers.start()
        for lane in self._lanes:
            timers.add_job(
                _fire,
                CronTrigger(parse(lane.entry.cron), lane.entry.zone),
                args=[lane],
                id=lane.name,
                name=lane.name,
                executor=EXECUTOR,
                coalesce=True,
                misfire_grace_time=None,
                max_instances=MAX_INSTANCES,
            )
        return timers

    def _notice(self, queue: str, due: datetime | None) -> None:
        for lane in self._lanes:
            lane.notice(queue, due)

    async def stop(self) -> None:
        """Remove the timers and the bus subscription; no tick starts after this returns."""
        self._stopping = True
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
        timers, self._timers = self._timers, None
        if timers is not None:
            timers.shutdown(wait=False)
        self._listener.cancel()
        for lane in self._lanes:
            lane.wake()  # idle loops see _stopping and return

    async def close(self) -> None:
        """Stop, give a running tick ``CLOSE_GRACE`` seconds to end, then cancel it."""
        await self.stop()
        task, self._task = self._task, None
        if task is None:
            return
        with anyio.move_on_after(CLOSE_GRACE):
            await self._ended.wait()
        self._cancel.cancel()
        await task

    async def _serve(self) -> None:
        try:
            with self._cancel:
                async with anyio.create_task_group() as tg:
                    for lane in self._lanes:
                        tg.start_soon(self._serve_lane, lane, name=lane.name)
                    if self.listen is not None and self._wakes_on_queue:
                        tg.start_soon(self._listen, self.listen, name="asyncjobs-notifications")
        finally:
            self._ended.set()

    async def _listen(self, listen: Listen) -> None:
        """Hear jobs queued by other processes (PostgreSQL NOTIFY) and publish them."""
        with self._listener, health.listening(self.jobs) as state:
            await listen(self.bus.publish, state)

    async def _serve_lane(self, lane: _Lane) -> None:
        async with lane.slots.running():  # leaving waits for the jobs still running
            while True:
                fired = await lane.wait()
                if self._stopping:
                    return
                await self._tick(lane, schedules=fired)

    async def _tick(self, lane: _Lane, *, schedules: bool = True) -> None:
        """Ask ``should_auto_run``, handle schedules (at cron times, unless disabled), claim due
        jobs for the free slots, then prune finished jobs past their retention (at most once a
        minute)."""
        jobs, entry = self.jobs, lane.entry
        health.ticked(jobs, lane.name, entry)
        with logs.silenced(entry.silent):
            if not await self._phase(entry, "should_auto_run", jobs.auto_run_allowed):
                return
            if schedules and not (entry.disable_scheduling or self._stopping):
                schedule = partial(
                    jobs.handle_schedules, queue=entry.queue, all_queues=entry.all_queues
                )
                await self._phase(entry, "handle_schedules", schedule)
            if not self._stopping:
                fill = partial(
                    jobs.fill_slots,
                    lane.slots,
                    queue=entry.queue,
                    all_queues=entry.all_queues,
                    silent=entry.silent,
                )
                await self._phase(entry, "run", fill)
            if not self._stopping:
                await self._phase(entry, "prune", jobs.prune_if_due)

    async def _phase(self, entry: AutoRun, phase: str, call: Callable[[], Awaitable[Any]]) -> Any:
        """Run one step of a tick; an exception is logged and the next tick still comes.

        A failing ``handle_schedules`` does not hold back running jobs, so one broken schedule
        hook cannot stall the queue. The message is logged even when the entry is ``silent``: a
        silenced tick must not hide a broken one.
        """
        try:
            return await call()
        except Exception:
            extra = {"phase": phase, "queue": entry.queue, "cron": entry.cron}
            logger.error(TICK_ERROR, exc_info=True, extra=extra)
            return None
