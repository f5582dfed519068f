"""Suspension: a job whose handler waits durably ends its attempt, releases its lease and
counts no try, in one fenced write that may also queue its child; woken later by time, a
signal or the child."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio

from asyncjobs import logs
from asyncjobs.attempt import WRITE_GRACE, Attempt, released
from asyncjobs.errors import StorageError
from asyncjobs.finisher import unrecorded
from asyncjobs.models import FOREVER, RunStatus
from asyncjobs.storage import Row
from asyncjobs.wake import ANY_QUEUE, Wake

Entry = Callable[[int | None], dict[str, Any]]  # a log entry, given the child's id if any


@dataclass(frozen=True)
class Suspension:
    """What a suspending attempt writes: runnable again at ``until`` (``None``: when woken),
    ``held`` while a signal or child is awaited (status ``"suspended"``, else
    ``"waiting"``), ``entry`` appended to the log, ``child`` queued with it, and ``check``:
    a ``(topic, consumed ids)`` whose unconsumed signal, if one arrived meanwhile, leaves the
    job runnable at once."""

    until: datetime | None
    held: bool
    entry: Entry | None = None
    check: tuple[str, frozenset[int]] | None = None
    child: Row | None = None


async def suspend(attempt: Attempt, suspension: Suspension, wake: Wake | None) -> RunStatus | None:
    """Write ``suspension`` while the lease holds; ``"suspended"``, or ``None`` when the
    lease was lost or the write failed (the job is left to its lease, no try counted)."""
    now = attempt.clock()
    attempt.releasing = True  # the token is cleared by our own write from here on
    values = _values(attempt, suspension, now)
    outcome = None
    try:
        with anyio.move_on_after(WRITE_GRACE, shield=True):
            outcome = await attempt.store.suspend(
                attempt.id,
                attempt.token,
                live_after=now + attempt.safety_buffer,
                values=values,
                check=suspension.check,
                child=suspension.child,
            )
    except StorageError:
        unrecorded(attempt)
        return None
    if outcome is None:
        return None
    still, child_id = outcome
    attempt.row = attempt.row._replace(**values(child_id))
    attempt.pending.clear()
    _announce(attempt, suspension, still, wake)
    _log(attempt, suspension, still)
    return "suspended"


def _values(
    attempt: Attempt, suspension: Suspension, now: datetime
) -> Callable[[int | None], dict[str, Any]]:
    def values(child_id: int | None) -> dict[str, Any]:
        entries = list(attempt.log)
        if suspension.entry is not None:
            entries.append(suspension.entry(child_id))
        return {
            **released(),
            "log": entries,
            "wait_until": FOREVER if suspension.until is None else suspension.until,
            "suspended": True if suspension.held else None,
            "updated_at": now,
        }

    return values


def _announce(attempt: Attempt, suspension: Suspension, still: bool, wake: Wake | None) -> None:
    """Wake this process's autoRun for the child's queue, and for the job at its time."""
    if wake is None:
        return
    if suspension.child is not None:
        wake(suspension.child["queue"], None)
    if not still:
        wake(attempt.row.queue, None)
    elif suspension.until is not None:
        wake(attempt.row.queue, suspension.until)


def child_settled(attempt: Attempt, status: RunStatus | None, wake: Wake | None) -> None:
    """A child finished for good here: its parent, woken by the same write, may run now."""
    final = status in ("success", "error-reached-max-retries")
    if final and wake is not None and attempt.row.parent_id is not None:
        wake(ANY_QUEUE, None)


def _log(attempt: Attempt, suspension: Suspension, still: bool) -> None:
    if not still:
        what = "a signal arrived meanwhile"
    elif suspension.until is None:
        what = "until woken"
    else:
        what = f"until {suspension.until.isoformat()}"
    logs.info("Job %s suspended %s.", attempt.id, what, extra=logs.job_fields(attempt.row))
