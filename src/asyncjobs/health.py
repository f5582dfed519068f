"""``GET /health``'s answer: whether the database answers, and what autoRun last did."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from asyncjobs.errors import StorageError
from asyncjobs.storage.monitoring import answers, database_kind

if TYPE_CHECKING:
    from asyncjobs.definitions import AutoRun
    from asyncjobs.storage import Store


class Jobs(Protocol):
    """What the health report needs of the ``Jobs`` it describes."""

    @property
    def store(self) -> Store: ...

    async def start(self, auto_run: bool = True) -> None: ...


OK = "ok"
UNAVAILABLE = "unavailable"


@dataclass
class Beats:
    """The autoRun activity of one ``Jobs``: each entry's last tick, the listener's state."""

    ticks: dict[str, tuple[AutoRun, float]] = field(default_factory=dict)
    listener: str = "off"


_beats: weakref.WeakKeyDictionary[object, Beats] = weakref.WeakKeyDictionary()


def _of(jobs: object) -> Beats:
    beats = _beats.get(jobs)
    if beats is None:
        beats = _beats[jobs] = Beats()
    return beats


def ticked(jobs: object, name: str, entry: AutoRun) -> None:
    """The autoRun entry ``name`` begins a tick."""
    _of(jobs).ticks[name] = (entry, time.monotonic())


@contextmanager
def listening(jobs: object) -> Iterator[Callable[[str], None]]:
    """Around the listener for jobs queued by other processes: ``"connecting"`` until it
    reports ``"listening"`` (or ``"reconnecting"``) through the function given, ``"stopped"``
    after."""
    beats = _of(jobs)
    beats.listener = "connecting"

    def state(value: str) -> None:
        beats.listener = value

    try:
        yield state
    finally:
        beats.listener = "stopped"


async def report(jobs: Jobs, *, detailed: bool) -> tuple[bool, dict[str, Any]]:
    """Whether the database answers, and the body to send: ``{"status": ...}``, with
    ``details`` when ``detailed`` (for callers with credentials)."""
    try:
        await jobs.start(auto_run=False)  # opens the database if nothing did yet
    except StorageError:
        up = False
    else:
        up = await answers(jobs.store)
    body: dict[str, Any] = {"status": OK if up else UNAVAILABLE}
    if detailed:
        body["details"] = details(jobs)
    return up, body


def details(jobs: Jobs) -> dict[str, Any]:
    beats = _beats.get(jobs) or Beats()
    now = time.monotonic()
    entries = [
        {
            "entry": name,
            "cron": entry.cron,
            "queue": None if entry.all_queues else entry.queue,
            "lastTickAgeSeconds": round(now - at, 3),
        }
        for name, (entry, at) in sorted(beats.ticks.items())
    ]
    return {
        "database": database_kind(jobs.store),
        "started": jobs.store.is_open,
        "autoRun": entries,
        "listener": beats.listener,
    }
