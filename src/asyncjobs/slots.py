"""An autoRun entry's job slots: up to ``limit`` of its jobs in flight, each refilled when free.

A slot is taken when a claim leases a job to the entry and given back when that job's handler
has ended (a success then waits for its grouped completion write, which no longer holds the
slot). Claims for an entry are made one at a time by its lane, each for as many jobs as there
are free slots, so a slow job holds one slot rather than the whole entry. The jobs of every
claim run in the slots' own task group, while the lane goes on to its next tick.

Refills are batched: a freed slot asks for a claim at once only when half the entry's slots
(at least one) are free, or none is busy; otherwise it asks for one ``REFILL_DELAY`` later
(on the entry's clock), so that one claim (one write transaction) leases several jobs while
a slow job still holds only its own slot.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from asyncjobs import logs

if TYPE_CHECKING:
    from asyncjobs.finisher import Finisher
    from asyncjobs.runner import Runner, RunRequest

# Completions of jobs that end close together across claims are written together: the write
# waits this long for more of them, unless ``limit`` jobs are already waiting.
GROUP_DELAY = 0.002
# A freed slot waits at most this long for others before asking for a claim.
REFILL_DELAY = 0.001


class Slots:
    """The slots of one autoRun entry; ``on_free(delay)`` asks for a claim in ``delay``
    seconds when a slot frees while jobs may be waiting (the last claim filled every slot it
    asked for, or none was free)."""

    def __init__(self, limit: int, *, on_free: Callable[[float], None] | None = None) -> None:
        self.limit = limit
        self.busy = 0
        self.on_free = on_free
        self.finisher: Finisher | None = None  # made by the runner at the first claim
        self._wanted = False
        self._group: TaskGroup | None = None
        self._batch = max(1, limit // 2)  # free slots that ask for a claim at once
        self._delayed = False  # a delayed ask is pending

    @property
    def free(self) -> int:
        return self.limit - self.busy

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The task group the claimed jobs run in; leaving waits for them."""
        async with anyio.create_task_group() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None

    def claimed(self, asked: int, count: int) -> None:
        """A claim for ``asked`` jobs leased ``count``: slots taken; a full claim hints at more."""
        self.busy += count
        self._wanted = count >= asked
        self._delayed = False

    def full(self) -> None:
        """A tick found no free slot: jobs may be waiting for one."""
        self._wanted = True

    def start(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if self._group is None:
            raise RuntimeError("slots are not running")
        self._group.start_soon(run)

    def release(self) -> None:
        """One job's handler has ended: its slot is free for the next claim."""
        self.busy -= 1
        if not self._wanted or self.on_free is None:
            return
        if self.busy == 0 or self.free >= self._batch:
            self.on_free(0.0)
        elif not self._delayed:  # one delayed ask per claim
            self._delayed = True
            self.on_free(REFILL_DELAY)


async def fill(runner: Runner, request: RunRequest, slots: Slots) -> int:
    """Claim jobs for the free ``slots`` and start them there; return how many.

    Returns as soon as they are claimed: each job gives its slot back when its handler ends,
    and their completions are written with those of the entry's other claims.
    """
    asked = slots.free
    if asked <= 0:
        slots.full()
        return 0
    with logs.silenced(request.silent):
        batch = await runner.claim_batch(request, asked)
        slots.claimed(asked, 0 if batch is None else len(batch.attempts))
        if batch is None:
            return 0
        if slots.finisher is None:
            slots.finisher = runner.finisher(runner.settle, group=(slots.limit, GROUP_DELAY))
        slots.start(partial(runner.run_batch, batch, slots.finisher, ended=slots.release))
        return len(batch.attempts)
