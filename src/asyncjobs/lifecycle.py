"""How a ``Jobs`` starts and stops: the database opened once, the autoRun timers, the drain.

``Jobs`` inherits these methods; they use only the attributes declared here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, cast

import anyio

from asyncjobs import injection, slots
from asyncjobs.definitions import DEFAULT_STOP_TIMEOUT, AutoRun, auto_run_list
from asyncjobs.logs import Silent
from asyncjobs.policies import OrderLike, order_for
from asyncjobs.runner import Runner, RunRequest
from asyncjobs.storage import Store
from asyncjobs.wake import WakeBus

if TYPE_CHECKING:
    from asyncjobs.autorun import TickHost


class Lifecycle:
    """Start and stop of the facade."""

    store: Store
    wake: WakeBus
    clock: Callable[[], datetime]
    runner: Runner
    auto_run: Sequence[AutoRun] | Callable[..., Any]
    should_auto_run: Callable[..., Any] | None
    processing_order: OrderLike

    def __init__(self) -> None:
        self._open_lock = anyio.Lock()
        self._timers: Any = None

    async def start(self, auto_run: bool = True) -> None:
        """Open the database (creating the schema) and, if asked, install the autoRun timers."""
        await self._ready()
        if not auto_run or self._timers is not None or not await self.auto_run_allowed():
            return
        entries = await self.auto_run_entries()
        if entries:
            from asyncjobs.autorun import AutoRunner

            timers = AutoRunner(
                cast("TickHost", self),  # a Jobs: it adds run() and handle_schedules()
                clock=self.clock,
                bus=self.wake,
                listen=self.store.listen if self.store.notifies else None,
            )
            await timers.start(entries)
            self._timers = timers

    async def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the timers, let running jobs finish within ``timeout``, release the rest."""
        timers, self._timers = self._timers, None
        if timers is not None:
            await timers.stop()
        await self.runner.drain(timeout)
        if timers is not None:
            await timers.close()  # after the drain, so a tick's last writes precede store.close()
        await self.store.close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @asynccontextmanager
    async def lifespan(
        self, auto_run: bool = True, stop_timeout: float = DEFAULT_STOP_TIMEOUT
    ) -> AsyncIterator[Self]:
        """``start()`` on entry, ``stop(stop_timeout)`` on exit: what every adapter uses.

        Args:
            auto_run: install the autoRun timers.
            stop_timeout: seconds running jobs get to finish on exit before they are
                handed back.
        """
        await self.start(auto_run=auto_run)
        try:
            yield self
        finally:
            await self.stop(timeout=stop_timeout)

    async def _ready(self) -> None:
        if self.store.is_open:
            return  # the common case, without the lock's yield to the loop
        async with self._open_lock:
            await self.store.open()

    async def auto_run_allowed(self) -> bool:
        if self.should_auto_run is None:
            return True
        return bool(await injection.call_positional(self.should_auto_run, self))

    async def fill_slots(
        self, free: slots.Slots, *, queue: str, all_queues: bool, silent: Silent
    ) -> int:
        """Claim jobs of an autoRun entry for its free slots and start them; how many."""
        args = {
            "queue": queue,
            "limit": free.limit,
            "all_queues": all_queues,
            "sequential": False,
            "processing_order": None,
            "where": None,
            "silent": silent,
            "override_access": True,
        }
        order = order_for(self.processing_order, None, queue, all_queues, args)
        request = RunRequest(
            limit=free.limit, order=order, queue=None if all_queues else queue, silent=silent
        )
        return await slots.fill(self.runner, request, free)

    async def auto_run_entries(self) -> list[AutoRun]:
        entries = self.auto_run
        if callable(entries):
            entries = await injection.call_positional(entries, self)
        return auto_run_list(entries)
