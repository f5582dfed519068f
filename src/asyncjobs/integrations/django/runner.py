"""The asyncjobs task that runs Django tasks: every ``Task.enqueue()`` is one job of it.

One generic task (slug ``django-task``) imports the Django task its job names and calls it,
rather than one asyncjobs task per Django task: Django tasks are found by their import path
at run time, as Django's own backends do, so nothing has to be registered twice. Add it to the
``Jobs`` that :class:`~asyncjobs.integrations.django.TasksBackend` uses::

    jobs = asyncjobs.Jobs(tasks=[..., task_runner(retries=3)], delete_job_on_complete=False)

Its ``retries`` and ``concurrency`` apply to every Django task run through it.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from contextvars import ContextVar
from inspect import iscoroutinefunction
from typing import Any

from asgiref.sync import sync_to_async
from django.db import close_old_connections
from django.utils import timezone

from asyncjobs.config import KeyFunction, Task
from asyncjobs.integrations.django import bridge
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
from asyncjobs.policies import Concurrency
from asyncjobs.retry import RetriesLike

logger = logging.getLogger(__name__)
running_a_job: ContextVar[bool] = ContextVar("asyncjobs_django_running_a_job", default=False)


def task_runner(
    *,
    retries: RetriesLike = None,
    concurrency: Concurrency | KeyFunction | None = None,
    label: str | None = "Django task",
) -> Task[dict[str, Any], dict[str, Any]]:
    """The ``django-task`` task that runs the Django tasks enqueued through ``TasksBackend``."""
    return Task(RUNNER_SLUG, run_django_task, retries=retries, concurrency=concurrency, label=label)


async def run_django_task(*, job: Job, jobs: Jobs) -> dict[str, Any]:
    """Call the Django task ``job`` names, sending Django's task signals around the call."""
    bridge.remember(jobs)  # sync code the task runs reaches ``jobs`` on this loop
    task = django_task(job)
    now = timezone.now()
    running = task_result(
        job,
        task,
        status=TaskResultStatus.RUNNING,
        started_at=job.log[0].executed_at if job.log else now,
        last_attempted_at=now,
        worker_ids=[WORKER_ID] * (len(job.log) + 1),
    )
    await _send(task_started, running)
    token = running_a_job.set(True)
    try:
        value = normalize_json(await _call(running))
    except Exception as exc:
        if _last_try(job, jobs):
            failed = [*running.errors, _task_error(exc)]
            await _finish(running, TaskResultStatus.FAILED, errors=failed)
        raise
    finally:
        running_a_job.reset(token)
    await _finish(running, TaskResultStatus.SUCCESSFUL, value=value)
    return {RETURN_KEY: value}


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


def _last_try(job: Job, jobs: Jobs) -> bool:
    retries = jobs.tasks[RUNNER_SLUG].retries
    allowed = retries.attempts if retries is not None and retries.attempts is not None else 0
    return sum(entry.state == "failed" for entry in job.log) >= allowed


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
