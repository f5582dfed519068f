"""The ``Jobs`` facade: configuration, lifecycle, and the operations users call."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from asyncjobs import injection, telemetry
from asyncjobs.config import (
    DEFAULT_LIMIT,
    DEFAULT_ORDER,
    DEFAULT_QUEUE,
    DEFAULT_STOP_TIMEOUT,
    Access,
    AutoRun,
    AutoRunLike,
    Lease,
    OrderLike,
    ProcessingOrder,
    Task,
    Workflow,
    check_id,
    check_order,
    check_queue,
    check_secret,
)
from asyncjobs.errors import Forbidden
from asyncjobs.logs import Silent, check_silent
from asyncjobs.models import Job, RunResult, ScheduleResult, make_job
from asyncjobs.queueing import check_items, prepare_rows
from asyncjobs.registry import Registry
from asyncjobs.runner import Runner, RunRequest
from asyncjobs.storage import Store
from asyncjobs.urls import driver_url

if TYPE_CHECKING:
    from asyncjobs.http import EndpointsApp

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///asyncjobs.db"
DATABASE_URL_ENV = "ASYNCJOBS_DATABASE_URL"
DEFAULT_FIND_LIMIT = 100
InputT = TypeVar("InputT")  # a Task's or Workflow's input type, checked against queue(input=)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Jobs:
    """Tasks, workflows and their jobs on one database; start it with the host app."""

    def __init__(
        self,
        *,
        tasks: Sequence[Task] = (),
        workflows: Sequence[Workflow] = (),
        database_url: str | None = None,
        auto_run: AutoRunLike = None,
        should_auto_run: Callable[[Jobs], Any] | None = None,
        delete_job_on_complete: bool = True,
        processing_order: OrderLike = DEFAULT_ORDER,
        access: Access | None = None,
        secret: str | None = None,
        lease: Lease | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.registry = Registry(tasks, workflows)
        if database_url is None:
            database_url = os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
        self.database_url = driver_url(database_url)
        self.auto_run = _check_auto_run(auto_run)
        self.should_auto_run = _check_callable(should_auto_run, "should_auto_run")
        self.delete_job_on_complete = bool(delete_job_on_complete)
        self.processing_order = _check_processing_order(processing_order)
        self.access = _check_type(access, Access, "access")
        self.secret = check_secret(secret)
        self.lease = _check_type(lease, Lease, "lease") or Lease()
        self.clock: Callable[[], datetime] = _check_callable(clock, "clock") or utcnow
        self.store = Store(self.database_url)
        self.runner = Runner(
            store=self.store,
            registry=self.registry,
            jobs=self,
            lease=self.lease,
            clock=self.clock,
            delete_on_complete=self.delete_job_on_complete,
        )
        self._open_lock = anyio.Lock()
        self._timers: Any = None
        self._queued_listeners: list[Callable[[Sequence[Job]], None]] = []

    def __repr__(self) -> str:
        slugs = [*self.registry.tasks, *self.registry.workflows]
        return f"Jobs(slugs={slugs}, store={self.store!r})"

    @property
    def tasks(self) -> Mapping[str, Task]:
        return self.registry.tasks

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return self.registry.workflows

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self, auto_run: bool = True) -> None:
        """Open the database (creating the schema) and, if asked, install the autoRun timers."""
        await self._ready()
        if not auto_run or self._timers is not None or not await self.auto_run_allowed():
            return
        entries = await self.auto_run_entries()
        if entries:
            from asyncjobs.scheduler import AutoRunner

            timers = AutoRunner(self)
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

    async def __aenter__(self) -> Jobs:
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
    ) -> AsyncIterator[Jobs]:
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

    async def auto_run_entries(self) -> list[AutoRun]:
        entries = self.auto_run
        if callable(entries):
            entries = await injection.call_positional(entries, self)
        return _check_auto_run_list(entries)

    def on_queued(self, listener: Callable[[Sequence[Job]], None]) -> Callable[[], None]:
        """Call ``listener`` with the jobs after every successful queue; returns an unsubscribe."""
        self._queued_listeners.append(listener)
        return lambda: self._queued_listeners.remove(listener)

    def asgi_app(self) -> EndpointsApp:
        """An ASGI app serving ``GET /run`` and ``GET /handle-schedules`` (``asyncjobs.http``).

        Requests need ``Authorization: Bearer <secret>`` or a true ``Access.run(request)``;
        otherwise they get 401 and nothing runs.
        """
        from asyncjobs.http import EndpointsApp

        return EndpointsApp(self)

    # -- operations ------------------------------------------------------------------------

    async def queue(
        self,
        *,
        task: str | Task[InputT, Any] | None = None,
        workflow: str | Workflow[InputT, Any] | None = None,
        input: InputT | None = None,
        queue: str | None = None,
        wait_until: datetime | None = None,
        meta: Mapping[str, Any] | None = None,
        override_access: bool = True,
        request: Any = None,
    ) -> Job:
        """Store one job.

        ``task`` / ``workflow`` is a slug or the ``Task`` / ``Workflow`` object (registered
        with this ``Jobs``). With an object, a type checker checks ``input`` against its
        ``input_schema`` model; at run time a dict is validated as well.

        Raises:
            ValueError: both or neither of ``task``/``workflow``, or a bad argument.
            NotRegistered: the slug is unknown.
            ValidationError: ``input`` fails the ``input_schema``; nothing is stored.
            Forbidden: ``override_access=False`` and ``Access.queue`` refused.
        """
        item = {
            "task": task,
            "workflow": workflow,
            "input": input,
            "queue": queue,
            "wait_until": wait_until,
            "meta": meta,
        }
        (job,) = await self._queue_items([item], override_access, request)
        return job

    async def queue_many(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        override_access: bool = True,
        request: Any = None,
    ) -> list[Job]:
        """Validate every item, then insert all of them in one transaction (all or nothing)."""
        return await self._queue_items(items, override_access, request)

    async def _queue_items(
        self, items: Sequence[Mapping[str, Any]], override_access: bool, request: Any
    ) -> list[Job]:
        items = check_items(items)
        if not override_access:
            await self._check_access("queue", override_access, request)
        for index, item in enumerate(items):
            if not item.get("override_access", True):  # an item's own queue() arguments
                try:
                    await self._check_access("queue", False, item.get("request", request))
                except Forbidden as exc:
                    raise Forbidden(f"item {index}: {exc}") from None
        if not items:
            return []
        now = self.clock()
        rows, supersede = await prepare_rows(self.registry, items, now)
        if not self.store.is_open:
            await self._ready()
        stored = await telemetry.created(
            rows, self.store.insert_jobs(rows, supersede=supersede, now=now)
        )
        created = [make_job(row, now) for row in stored]
        if self._queued_listeners:
            for listener in list(self._queued_listeners):
                listener(created)
        return created

    async def run(
        self,
        *,
        queue: str = DEFAULT_QUEUE,
        limit: int = DEFAULT_LIMIT,
        all_queues: bool = False,
        sequential: bool = False,
        processing_order: str | None = None,
        where: Mapping[str, Any] | None = None,
        silent: Silent = False,
        override_access: bool = True,
        request: Any = None,
    ) -> RunResult:
        """Claim up to ``limit`` runnable jobs and run them (in parallel unless ``sequential``)."""
        await self._check_access("run", override_access, request)
        check_queue(queue)
        _check_limit(limit)
        check_queue(queue)
        check_silent(silent)
        order = self._order(processing_order, queue, all_queues, locals())
        await self._ready()
        return await self.runner.run(
            RunRequest(
                limit=limit,
                order=order,
                queue=None if all_queues else queue,
                where=dict(where) if where else None,
                sequential=sequential,
                silent=silent,
            )
        )

    async def run_by_id(
        self, id: int, *, override_access: bool = True, request: Any = None, silent: Silent = False
    ) -> RunResult:
        """Run that job if it is runnable, whatever its queue; otherwise run nothing."""
        await self._check_access("run", override_access, request)
        await self._ready()
        return await self.runner.run(
            RunRequest(limit=1, order=DEFAULT_ORDER, job_id=check_id(id), silent=silent)
        )

    async def cancel(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        queue: str | None = None,
        override_access: bool = True,
        request: Any = None,
    ) -> int:
        """Cancel the matching jobs that are not finished; return how many."""
        if not where and queue is None:
            raise ValueError("cancel() needs where or queue; cancelling every job is not allowed")
        if queue is not None:
            check_queue(queue)
        await self._check_access("cancel", override_access, request)
        return len(await self._cancel(where, queue))

    async def cancel_by_id(
        self, id: int, *, override_access: bool = True, request: Any = None
    ) -> bool:
        """Cancel one job; ``False`` when it is missing or already finished."""
        await self._check_access("cancel", override_access, request)
        return bool(await self._cancel({"id": check_id(id)}, None))

    async def retry_by_id(self, id: int) -> bool:
        """Make a failed or cancelled job runnable again; its succeeded steps are kept.

        The job keeps its log and ``total_tried``, so a step that used up its retries gets one
        more try. Returns ``False`` when the job is missing or neither failed nor cancelled.
        """
        await self._ready()
        now = self.clock()
        row = await self.store.retry(check_id(id), now=now)
        if row is None:
            return False
        # Runnable again, like a new job: wake_on_queue listeners may run it at once.
        for listener in list(self._queued_listeners):
            listener([make_job(row, now)])
        return True

    async def _cancel(self, where: Mapping[str, Any] | None, queue: str | None) -> list[int]:
        await self._ready()
        ids = await self.store.cancel(where, queue=queue, now=self.clock(), message="cancelled")
        self.runner.cancel_running(ids)
        return ids

    async def handle_schedules(
        self, *, queue: str = DEFAULT_QUEUE, all_queues: bool = False
    ) -> ScheduleResult:
        """Enqueue one job per due schedule tick (at most once per tick, across instances)."""
        from asyncjobs.schedules import handle_schedules

        check_queue(queue)
        await self._ready()
        return await handle_schedules(self, queue=queue, all_queues=all_queues)

    async def get(self, id: int) -> Job | None:
        await self._ready()
        row = await self.store.get(check_id(id))
        return None if row is None else make_job(row, self.clock())

    async def find(
        self,
        *,
        where: Mapping[str, Any] | None = None,
        limit: int = DEFAULT_FIND_LIMIT,
        order: str = "-created_at",
    ) -> list[Job]:
        """Jobs matching ``where`` (the ``run()`` keys plus ``status``), newest first."""
        _check_limit(limit)
        check_order(order)
        await self._ready()
        now = self.clock()
        rows = await self.store.find(where, limit=limit, order=order, now=now)
        return [make_job(row, now) for row in rows]

    # -- helpers ---------------------------------------------------------------------------

    async def _check_access(self, kind: str, override_access: bool, request: Any) -> None:
        if override_access:
            return
        if self.access is None or not await self.access.approves(kind, request):
            raise Forbidden(f"access to {kind} was refused")

    def _order(
        self, explicit: str | None, queue: str, all_queues: bool, run_args: Mapping[str, Any]
    ) -> str:
        if explicit is not None:
            return check_order(explicit)
        configured = self.processing_order
        if isinstance(configured, str):
            return configured
        if isinstance(configured, ProcessingOrder):
            if not all_queues and queue in configured.queues:
                return configured.queues[queue]
            return configured.default
        args = {k: v for k, v in run_args.items() if k not in ("self", "request")}
        return check_order(configured(args))


def _check_limit(limit: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")


def _check_type(value: Any, kind: type, name: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__} or None, got {value!r}")
    return value


def _check_callable(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value


def _check_processing_order(value: OrderLike) -> OrderLike:
    if isinstance(value, str):
        return check_order(value)
    if isinstance(value, ProcessingOrder) or callable(value):
        return value
    raise TypeError(f"processing_order must be a str, ProcessingOrder or callable, got {value!r}")


def _check_auto_run(value: AutoRunLike) -> Sequence[AutoRun] | Callable[[Jobs], Any]:
    if value is None:
        return [AutoRun()]
    if callable(value):
        return value
    return _check_auto_run_list(value)


def _check_auto_run_list(value: Any) -> list[AutoRun]:
    entries = list(value)
    for entry in entries:
        if not isinstance(entry, AutoRun):
            raise TypeError(f"auto_run entries must be AutoRun objects, got {entry!r}")
    return entries
