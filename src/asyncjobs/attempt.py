"""One claimed job as this worker holds it: in-memory state and lease-fenced writes."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import anyio

from asyncjobs.errors import ConnectionLost, JobRunAborted, ValidationError, WriteRefused
from asyncjobs.models import Job, JobRow, TaskStatus, make_job, step_status
from asyncjobs.retry import Retries
from asyncjobs.storage import Store

WRITE_GRACE = 10.0  # seconds a started write may finish despite cancellation
_LOG_ONLY = frozenset({"log", "updated_at"})


class LogWrites(Protocol):
    """Where step logs of several jobs are written together (``asyncjobs.step_writes``)."""

    async def write(self, attempt: Attempt, log: list[dict[str, Any]]) -> bool: ...


@dataclass(slots=True)
class Attempt:
    """The worker's view of one leased job; every write checks the lease token."""

    row: JobRow
    token: str
    store: Store
    clock: Callable[[], datetime]
    safety_buffer: timedelta
    retries: Retries | None = None  # the workflow's (a single-task job has none of its own)
    result: str | None = None
    releasing: bool = False
    defer_top_step: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    deferred_step: Any = None  # the step whose entry waits in ``pending`` (a ``Step``)
    # Made only while the handler runs, and the lock only when the job writes itself: every
    # object a running job holds may be promoted to an old GC generation, and a full
    # collection of a large heap pauses the host loop (see ``Runner._run_one``).
    scope: anyio.CancelScope | None = None
    cancel_requested: bool = False
    reporting: Any = None  # ``telemetry.active()`` when it was claimed
    observed: Any = None  # what ``asyncjobs.telemetry`` keeps while it runs
    output: Any = None  # what the handler returned, as stored with the completion
    log_writes: LogWrites | None = None  # a step's log goes with other jobs' when given
    taken: set[int] = field(default_factory=set)  # signals a wait of this attempt took
    _lock: anyio.Lock | None = None

    @property
    def id(self) -> int:
        return self.row.id

    @property
    def holding(self) -> bool:
        """Still running and not yet writing its final update (which clears the token)."""
        return self.result is None and not self.releasing

    @property
    def log(self) -> list[dict[str, Any]]:
        """Every step entry of this job, including those waiting for the next write."""
        return [*(self.row.log or ()), *self.pending]

    def new_scope(self) -> anyio.CancelScope:
        """The scope the handler runs in; born cancelled if :meth:`cancel` came first."""
        self.scope = anyio.CancelScope()
        if self.cancel_requested:
            self.scope.cancel()
        return self.scope

    def cancel(self) -> None:
        """Interrupt the handler now, or as soon as it starts (not once it has returned)."""
        self.cancel_requested = True
        if self.scope is not None:
            self.scope.cancel()

    def unsaved_log(self) -> list[dict[str, Any]] | None:
        """The full log when entries wait to be written, else ``None``."""
        return self.log if self.pending else None

    def finished(self, now: datetime) -> None:
        """Reflect a completion that a group write recorded."""
        self.row = self.row._replace(
            log=self.log,
            output=self.output,
            completed_at=now,
            processing_until=None,
            processing_token=None,
            total_tried=self.row.total_tried + 1,
            updated_at=now,
        )
        self.pending.clear()

    async def record_step(self, entry: dict[str, Any], *, top_level: bool, step: Any) -> None:
        """Log a succeeded step: at once, or with the completion for a single-task job.

        Deferring only the one top-level step of a single-task job changes no outcome: the
        completion is the very next write, and a crash before it re-runs that step either way.
        ``step`` is kept for a completion that cannot be written (see ``Runner``).

        Raises:
            WriteRefused: the entry cannot be stored.
        """
        if top_level and self.defer_top_step:
            self.pending.append(entry)
            self.deferred_step = step
            return
        await self.write({}, log_entry=entry)

    def snapshot(self) -> Job:
        """The job as of the last write, for handlers and hooks."""
        return make_job(self.row, self.clock())

    def task_status(self, slug: str, task_id: str) -> TaskStatus | None:
        return step_status(self.log, slug, task_id)

    def failures_since_success(self, slug: str, task_id: str) -> int:
        count = 0
        for entry in self.log:
            if entry["task_slug"] == slug and entry["task_id"] == task_id:
                count = 0 if entry["state"] == "succeeded" else count + 1
        return count

    async def write(
        self, values: Mapping[str, Any], *, log_entry: dict[str, Any] | None = None
    ) -> None:
        """Persist ``values`` (and append ``log_entry``) while this worker owns the job.

        Raises:
            JobRunAborted: the lease was lost or the job was cancelled meanwhile.
            ConnectionLost: the database could not be reached; not the job's fault.
            WriteRefused: anything else failed, such as a value that cannot be stored.
        """
        if self._lock is None:
            self._lock = anyio.Lock(fast_acquire=True)  # a write follows: it yields
        async with self._lock:
            if not self.store.is_open:  # stopped meanwhile: ``stop()`` handed the job back
                raise JobRunAborted(f"job {self.id} was handed back when its runner stopped")
            now = self.clock()
            update = dict(values)
            if log_entry is not None or self.pending:
                update["log"] = [*self.log, *([log_entry] if log_entry is not None else [])]
            update.setdefault("updated_at", now)
            # Once the final write is on its way, a token found cleared is our own doing.
            if "processing_token" in update:
                self.releasing = True
            # Shielded: a write cancelled after its commit would leave ``row`` behind the
            # database, and the next write would drop a logged step (say, a parallel sibling
            # cancelled because another step failed).
            with anyio.move_on_after(WRITE_GRACE, shield=True):
                owned = await self._update(update, now)
                if owned:
                    self.row = self.row._replace(**update)
                    self.pending.clear()
                    return
            raise JobRunAborted(f"job {self.id} can no longer be updated by this runner")

    async def _update(self, update: Mapping[str, Any], now: datetime) -> bool:
        """One fenced update; a failure other than a lost connection is the job's own."""
        try:
            if self.log_writes is not None and update.keys() == _LOG_ONLY:
                return await self.log_writes.write(self, update["log"])
            return await self.store.update_owned(
                self.id, self.token, live_after=now + self.safety_buffer, values=update
            )
        except (ConnectionLost, WriteRefused):
            raise
        except Exception as exc:
            raise WriteRefused(str(exc)) from exc


def new_log_entry(
    *,
    slug: str,
    task_id: str,
    executed_at: datetime,
    completed_at: datetime,
    input: Any,
    output: Any,
    error: dict[str, Any] | None = None,
    parent: dict[str, str] | None = None,
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4().hex,
        "executed_at": executed_at.isoformat(),
        "completed_at": completed_at.isoformat(),
        "task_slug": slug,
        "task_id": task_id,
        "input": input,
        "output": output,
        "state": "failed" if error is not None else "succeeded",
        "error": error,
        "parent": parent,
    }


def error_json(exc: BaseException) -> dict[str, Any]:
    """``{name, message, cancelled, traceback}`` of the exception a handler raised."""
    return {
        "name": type(exc).__name__,
        "message": storable(str(exc) or type(exc).__name__),
        "cancelled": False,
        "traceback": storable("".join(traceback.format_exception(exc))),
    }


def storable(text: str) -> str:
    """``text`` with what PostgreSQL's jsonb refuses (NUL, unpaired surrogates) replaced, so a
    failure with such a message is still recorded, the same on both backends."""
    if "\x00" in text or not text.isascii():
        text = text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "\ufffd")
    return text


def unstorable(what: str, refused: BaseException) -> ValidationError:
    """The error a job fails with when ``what`` could not be stored."""
    return ValidationError(f"{what} could not be stored: {storable(str(refused))}")


def released() -> dict[str, Any]:
    return {"processing_until": None, "processing_token": None}
