"""The wake bus: every way a job becomes runnable here is announced as ``(queue, due)``.

Publishers: ``queue()``/``queue_many()`` (the runnable jobs they stored), ``retry_by_id``, the
runner (a failed attempt that will be tried again) and, on PostgreSQL, the NOTIFY listener
(jobs queued by other processes). Subscribers: the autoRun lanes, which tick now (``due`` is
``None`` or past) or at ``due``. Jobs enqueued by ``handle_schedules`` are not published: the
tick that handles schedules runs jobs right after, and a wake would let a hook that
schedules on every call spin forever.

Its second channel, ``finished``, announces jobs that completed, failed for good or were
cancelled, to ``jobs.wait()``: published by the runner, ``cancel()`` and, on PostgreSQL, the
listener of other processes' finishes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

import anyio

from asyncjobs.models import Job

Wake = Callable[[str, datetime | None], None]
# Published as the queue when the queue of a woken job is not known here (a parent woken by
# its child's finish): every lane that wakes on queued jobs takes a look.
ANY_QUEUE = ""
_RUNNABLE = frozenset({"queued", "waiting"})  # statuses that make a queued job worth a wake


class WakeBus:
    """Subscribers called in order, synchronously, for every ``(queue, due)`` published."""

    def __init__(self) -> None:
        self._subscribers: list[Wake] = []
        self.finished = FinishedBus()

    def subscribe(self, wake: Wake) -> Callable[[], None]:
        """Call ``wake(queue, due)`` for every event from now on; returns an unsubscribe."""
        self._subscribers.append(wake)
        return lambda: self._subscribers.remove(wake)

    def publish(self, queue: str, due: datetime | None) -> None:
        for wake in list(self._subscribers):
            wake(queue, due)

    def publish_jobs(self, jobs: Iterable[Job]) -> None:
        """The runnable ones of ``jobs``; a batch mostly repeats one ``(queue, due)`` pair, so
        each pair is published once, in order."""
        if not self._subscribers:
            return  # the common case without autoRun: no pass over the batch
        runnable = {(j.queue, j.wait_until): None for j in jobs if j.status in _RUNNABLE}
        for queue, due in runnable:
            self.publish(queue, due)


class FinishedBus:
    """One event per waited job id, set when that job finishes; nothing to do when no-one
    waits (the common case: a completion batch pays one dict check)."""

    def __init__(self) -> None:
        self._waiting: dict[int, list[anyio.Event]] = {}

    @contextmanager
    def watch(self, job_id: int) -> Iterator[anyio.Event]:
        """An event set once ``job_id`` is announced finished from now on."""
        event = anyio.Event()
        events = self._waiting.setdefault(job_id, [])
        events.append(event)
        try:
            yield event
        finally:
            events.remove(event)
            if not events:
                del self._waiting[job_id]

    def publish(self, ids: Iterable[int]) -> None:
        if not self._waiting:
            return
        for job_id in ids:
            for event in self._waiting.get(job_id, ()):
                event.set()

    def publish_all(self) -> None:
        """Wake every waiter (they look again): a listener lost what it might have heard."""
        for events in self._waiting.values():
            for event in events:
                event.set()
