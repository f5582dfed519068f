"""The asyncjobs workflow that runs Django tasks: every ``Task.enqueue()`` is one job of it.

One generic workflow (slug ``django-task``) imports the Django task its job names and calls it
as its one step, rather than one asyncjobs definition per Django task: Django tasks are found
by their import path at run time, as Django's own backends do, so nothing has to be registered
twice. Add it to the ``Jobs`` that :class:`~asyncjobs.integrations.django.TasksBackend` uses::

    jobs = asyncjobs.Jobs(workflows=[..., task_runner(retries=3)])

Its ``retries`` and ``concurrency`` apply to every Django task that does not declare its own
with :func:`~asyncjobs.integrations.django.options`.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from functools import partial
from inspect import iscoroutinefunction
from typing import Any, cast

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from asyncjobs import injection
from asyncjobs.definitions import KeyFunction, Workflow
from asyncjobs.integrations.django import bridge, task_options
from asyncjobs.integrations.django.results import (
    RETURN_KEY,
    RUNNER_SLUG,
    WORKER_ID,
    django_task,
    task_result,
)
from asyncjobs.integrations.django.tasks_api import (
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
    normalize_json,
    task_finished,
    task_started,
)
from asyncjobs.jobs import Jobs
from asyncjobs.models import Job
from asyncjobs.policies import Concurrency, as_concurrency
from asyncjobs.retry import Retries, RetriesLike, as_retries, task_max_retries
from asyncjobs.step_runner import root_cause

logger = logging.getLogger(__name__)
running_a_job: ContextVar[bool] = ContextVar("asyncjobs_django_running_a_job", default=False)
Handler = Callable[..., Awaitable[dict[str, Any]]]


def task_runner(
    *,
    retries: RetriesLike = None,
    concurrency: Concurrency | KeyFunction | None = None,
    label: str | None = "Django task",
) -> Workflow[dict[str, Any], dict[str, Any]]:
    """The ``django-task`` workflow that runs the Django tasks enqueued through ``TasksBackend``.

    Args:
        retries: the retries (and backoff) of every Django task that declares none.
        concurrency: the concurrency key of every Django task that declares none; its
            ``exclusive`` and ``supersedes`` apply to the keys tasks declare too.
        label: the label shown for its jobs.

    Claims of a ``Jobs`` with this workflow consider concurrency keys, since any Django task
    may declare one.
    """
    default = as_retries(retries, "task_runner() retries")
    keys = _concurrency(as_concurrency(concurrency))
    return Workflow(RUNNER_SLUG, _runner(default), concurrency=keys, label=label)


def _runner(default: Retries | None) -> Handler:
    async def run_django_task(*, job: Job, jobs: Jobs, inline_task: Any) -> dict[str, Any]:
        """Call the Django task ``job`` names as one step, with that task's retries."""
        return await _run(job, jobs, inline_task, default)

    return run_django_task


def _concurrency(base: Concurrency | None) -> Concurrency:
    """The key a Django task declares, else ``base``'s."""

    async def key(*, input: Any, queue: str) -> str | None:
        declared = task_options.declared_concurrency(input)
        if declared is not None:
            return await task_options.key_value(declared, input)
        if base is None:
            return None
        found: str | None = await injection.call(base.key, {"input": input, "queue": queue})
        return found

    # Concurrency.key may be async (its caller awaits what it returns); its type says sync.
    sync_typed = cast("KeyFunction", key)
    if base is None:
        return Concurrency(sync_typed)
    return Concurrency(sync_typed, exclusive=base.exclusive, supersedes=base.supersedes)


async def _run(job: Job, jobs: Jobs, inline_task: Any, default: Retries | None) -> dict[str, Any]:
    """Send Django's task signals around the call; ``task_finished`` once, when it is over."""
    bridge.remember(jobs)  # sync code the task runs reaches ``jobs`` on this loop
    task = django_task(job)
    retries = task_options.retries_for(task, default)
    running = _running(job, task)
    await _send(task_started, running)
    try:
        output: dict[str, Any] = await inline_task(
            task.name, task=partial(_called, running), retries=retries
        )
    except Exception as exc:
        if _last_try(job, retries):
            failed = [*running.errors, _task_error(root_cause(exc))]
            await _finish(running, TaskResultStatus.FAILED, errors=failed)
        raise
    await _finish(running, TaskResultStatus.SUCCESSFUL, value=output.get(RETURN_KEY))
    return output


def _running(job: Job, task: Any) -> TaskResult:
    now = timezone.now()
    return task_result(
        job,
        task,
        status=TaskResultStatus.RUNNING,
        started_at=job.log[0].executed_at if job.log else now,
        last_attempted_at=now,
        worker_ids=[WORKER_ID] * (len(job.log) + 1),
    )


async def _called(running: TaskResult) -> dict[str, Any]:
    token = running_a_job.set(True)
    try:
        return {RETURN_KEY: normalize_json(await _call(running))}
    finally:
        running_a_job.reset(token)


async def _call(result: TaskResult) -> Any:
    task = result.task
    args = [TaskContext(task_result=result)] if task.takes_context else []
    args += result.args
    try:
        if iscoroutinefunction(task.func):
            return await task.func(*args, **result.kwargs)
        # Not thread-sensitive: sync tasks run side by side, like sync asyncjobs handlers.
        return await sync_to_async(_call_sync, thread_sensitive=False)(
            task.func, args, result.kwargs
        )
    finally:
        await sync_to_async(close_old_connections)()  # where async ORM calls ran


def _call_sync(func: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    close_old_connections()  # like a request: a fresh or still usable connection
    try:
        return func(*args, **kwargs)
    finally:
        close_old_connections()


def _last_try(job: Job, retries: Retries | None) -> bool:
    failures = sum(entry.state == "failed" for entry in job.log)
    return failures >= task_max_retries(retries, None)


def _task_error(exc: BaseException) -> TaskError:
    kind = type(exc)
    return TaskError(
        exception_class_path=f"{kind.__module__}.{kind.__qualname__}",
        traceback="".join(traceback.format_exception(exc)),
    )


async def _finish(
    running: TaskResult, status: Any, *, value: Any = None, errors: Any = None
) -> None:
    changes: dict[str, Any] = {"status": status, "finished_at": timezone.now()}
    if errors is not None:
        changes["errors"] = errors
    finished = dataclasses.replace(running, **changes)
    object.__setattr__(finished, "_return_value", value)
    await _send(task_finished, finished)


async def _send(signal: Any, result: TaskResult) -> None:
    """Send a task signal; a receiver's error is logged, never fails (or reruns) the task."""
    sender = type(result.task.get_backend())
    for receiver, outcome in await signal.asend_robust(sender=sender, task_result=result):
        if isinstance(outcome, Exception):
            logger.error(
                "A receiver of a Django task signal raised: %r",
                outcome,
                exc_info=outcome,
                extra={"job_id": result.id, "receiver": repr(receiver)},
            )
