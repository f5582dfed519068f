"""The ``Jobs`` facade: configuration, lifecycle, and the operations users call."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from asyncjobs.checks import (
    check_callable,
    check_id,
    check_limit,
    check_order,
    check_queue,
    check_secret,
    check_type,
)
from asyncjobs.dashboard import dashboard_app
from asyncjobs.definitions import (
    DEFAULT_LIMIT,
    DEFAULT_QUEUE,
    Access,
    AutoRun,
    Task,
    Workflow,
    as_auto_run,
    check_access,
)
from asyncjobs.lifecycle import Lifecycle
from asyncjobs.logs import Silent, check_silent
from asyncjobs.models import Job, RunResult, ScheduleResult, make_job
from asyncjobs.policies import DEFAULT_ORDER, Lease, OrderLike, as_processing_order, order_for
from asyncjobs.queueing import check_items, check_items_access, queue_items
from asyncjobs.registry import Registry
from asyncjobs.results import Waiting
from asyncjobs.retention import Pruning, Retention
from asyncjobs.runner import Runner, RunRequest
from asyncjobs.schedules import handle_schedules
from asyncjobs.signalling import Signalling
from asyncjobs.storage import store_for
from asyncjobs.transactional import queue_through
from asyncjobs.urls import driver_url
from asyncjobs.wake import ANY_QUEUE, WakeBus

if TYPE_CHECKING:
    from asyncjobs.http import EndpointsApp

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///asyncjobs.db"
DATABASE_URL_ENV = "ASYNCJOBS_DATABASE_URL"
DEFAULT_FIND_LIMIT = 100
InputT = TypeVar("InputT")  # a Task's or Workflow's input type, checked against queue(input=)


utcnow = partial(datetime.now, UTC)  # the default clock
AutoRunLike = Sequence[AutoRun] | Callable[["Jobs"], Any] | None


class Jobs(Lifecycle, Waiting, Pruning, Signalling):
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
        retention: Retention | None = None,
    ) -> None:
        self.registry = Registry(tasks, workflows)
        if database_url is None:
            database_url = os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL
        self.database_url = driver_url(database_url)
        self.auto_run = as_auto_run(auto_run)
        self.should_auto_run = check_callable(should_auto_run, "should_auto_run")
        self.delete_job_on_complete = bool(delete_job_on_complete)
        self.processing_order = as_processing_order(processing_order)
        self.access = check_type(access, Access, "access")
        self.secret = check_secret(secret)
        self.lease = check_type(lease, Lease, "lease") or Lease()
        self.clock: Callable[[], datetime] = check_callable(clock, "clock") or utcnow
        self.retention = check_type(retention, Retention, "retention")
        self.store = store_for(self.database_url)
        self.wake = WakeBus()  # autoRun lanes subscribe; queue(), retries and NOTIFY publish
        self.runner = Runner(
            store=self.store,
            registry=self.registry,
            host=self,
            lease=self.lease,
            clock=self.clock,
            delete_on_complete=self.delete_job_on_complete,
            on_retry=self.wake.publish,
            on_finished=self.wake.finished.publish,
        )
        super().__init__()

    def __repr__(self) -> str:
        slugs = [*self.registry.tasks, *self.registry.workflows]
        return f"Jobs(slugs={slugs}, store={self.store!r})"

    @property
    def tasks(self) -> Mapping[str, Task]:
        return self.registry.tasks

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return self.registry.workflows

    def asgi_app(self) -> EndpointsApp:
        """The endpoints (``/run``, ``/handle-schedules``, ``/health``, ``/metrics``) as ASGI."""
        from asyncjobs.http import EndpointsApp

        return EndpointsApp(self)

    dashboard_app = dashboard_app  # the jobs in a browser: see ``asyncjobs.dashboard``

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
        priority: int | None = None,
        idempotency_key: str | None = None,
        override_access: bool = True,
        request: Any = None,
        connection: Any = None,
    ) -> Job:
        """Store one job (inside ``connection``'s transaction when given: see ``queue_many``).

        ``task`` / ``workflow`` is a slug or the ``Task`` / ``Workflow`` object (registered
        with this ``Jobs``). With an object, a type checker checks ``input`` against its
        ``input_schema`` model; at run time a dict is validated as well. While a job queued
        with ``idempotency_key`` is unfinished, that job is returned and nothing is stored.

        Raises:
            ValueError: both or neither of ``task``/``workflow``, or a bad argument.
            NotRegistered: the slug is unknown.
            ValidationError: a bad ``input`` or ``priority`` (-100..100); nothing is stored.
            Forbidden: ``override_access=False`` and ``Access.queue`` refused.
        """
        item = dict[str, Any](task=task, workflow=workflow, input=input, queue=queue, meta=meta)
        item.update(wait_until=wait_until, priority=priority, idempotency_key=idempotency_key)
        (job,) = await self._queue_items([item], override_access, request, connection)
        return job

    async def queue_many(
        self,
        items: Sequence[Mapping[str, Any]],
        *,
        override_access: bool = True,
        request: Any = None,
        connection: Any = None,
    ) -> list[Job]:
        """Validate every item, then insert all of them in one transaction (all or nothing):
        ``connection``'s (a SQLAlchemy ``AsyncConnection`` or ``AsyncSession`` on this
        database), committed by its owner and woken after that commit, else a transaction
        of its own."""
        return await self._queue_items(items, override_access, request, connection)

    async def _queue_items(
        self, items: Sequence[Mapping[str, Any]], override_access: bool, request: Any, conn: Any
    ) -> list[Job]:
        items = check_items(items)
        await check_access(self.access, "queue", override_access, request)
        await check_items_access(items, self.access, request)
        if not items:
            return []
        if conn is not None:
            return await queue_through(conn, self, items)
        await self._ready()
        created = await queue_items(self.store, self.registry, items, self.clock())
        self.wake.publish_jobs(created)
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
        await check_access(self.access, "run", override_access, request)
        check_queue(queue)
        check_limit(limit)
        check_silent(silent)
        order = order_for(self.processing_order, processing_order, queue, all_queues, locals())
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
        await check_access(self.access, "run", override_access, request)
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
        await check_access(self.access, "cancel", override_access, request)
        return len(await self._cancel(where, queue))

    async def cancel_by_id(
        self, id: int, *, override_access: bool = True, request: Any = None
    ) -> bool:
        """Cancel one job; ``False`` when it is missing or already finished."""
        await check_access(self.access, "cancel", override_access, request)
        return bool(await self._cancel({"id": check_id(id)}, None))

    async def retry_by_id(self, id: int) -> bool:
        """Make a failed or cancelled job runnable again, keeping its log and ``total_tried``
        (a step that used up its retries gets one more try); ``False`` if there is none."""
        await self._ready()
        now = self.clock()
        row = await self.store.retry(check_id(id), now=now)
        if row is None:
            return False
        self.wake.publish_jobs([make_job(row, now)])  # runnable again: a lane may run it now
        return True

    async def _cancel(self, where: Mapping[str, Any] | None, queue: str | None) -> list[int]:
        await self._ready()
        ids = await self.store.cancel(where, queue=queue, now=self.clock(), message="cancelled")
        self.runner.cancel_running(ids)
        self.wake.finished.publish(ids)
        self.wake.publish(ANY_QUEUE, None)  # a cancelled child's parent is runnable again
        return ids

    async def handle_schedules(
        self, *, queue: str = DEFAULT_QUEUE, all_queues: bool = False
    ) -> ScheduleResult:
        """Enqueue one job per due schedule tick (at most once per tick, across instances)."""
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
        check_limit(limit)
        check_order(order)
        await self._ready()
        now = self.clock()
        rows = await self.store.find(where, limit=limit, order=order, now=now)
        return [make_job(row, now) for row in rows]
