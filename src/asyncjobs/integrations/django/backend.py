"""``TasksBackend``: Django's ``@task`` functions run as asyncjobs jobs.

Settings::

    TASKS = {
        "default": {
            "BACKEND": "asyncjobs.integrations.django.TasksBackend",
            "QUEUES": ["default", "emails"],   # asyncjobs queues the tasks may use
            "OPTIONS": {"JOBS": "myproject.jobs:jobs"},  # default: settings.ASYNCJOBS["JOBS"]
        }
    }

That ``Jobs`` needs :func:`~asyncjobs.integrations.django.task_runner` among its workflows
(``manage.py check`` says so when it is missing). Jobs enqueued here are kept when they
complete, whatever ``delete_job_on_complete`` says, so that ``get_result()`` finds them;
``Jobs(retention=...)`` prunes them. ``TaskResult.id`` is ``str(Job.id)``. When asyncjobs uses
one of Django's databases, ``enqueue()`` inside ``transaction.atomic()`` is part of that
transaction (:mod:`.queueing`). A task's own asyncjobs options: :mod:`.task_options`.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from asyncjobs.checks import check_id
from asyncjobs.integrations.django import bridge, idle, queueing, task_options
from asyncjobs.integrations.django.loading import load_jobs
from asyncjobs.integrations.django.results import (
    RUNNER_SLUG,
    django_task,
    job_input,
    task_result,
)
from asyncjobs.integrations.django.tasks_api import (
    BaseTaskBackend,
    Task,
    TaskResult,
    TaskResultDoesNotExist,
    normalize_json,
    task_enqueued,
)
from asyncjobs.jobs import Jobs
from asyncjobs.keeping import KEEP_KEY
from asyncjobs.models import Job


class TasksBackend(BaseTaskBackend):  # type: ignore[misc]
    """A ``django.tasks`` backend that stores each enqueued task as an asyncjobs job."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    @property
    def jobs(self) -> Jobs:
        """The ``Jobs`` named by ``OPTIONS["JOBS"]``, else by ``settings.ASYNCJOBS["JOBS"]``."""
        return load_jobs(self.options.get("JOBS"), f'TASKS["{self.alias}"]["OPTIONS"]["JOBS"]')

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        jobs = _with_runner(self.jobs)
        job = self._queued(queueing.queue_in_django(jobs, **_arguments(task, args, kwargs)))
        result = task_result(job, task)
        task_enqueued.send(type(self), task_result=result)
        return result

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        jobs = _with_runner(self.jobs)
        job = self._queued(await queueing.aqueue_in_django(jobs, **_arguments(task, args, kwargs)))
        result = task_result(job, task)
        await task_enqueued.asend(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        jobs = self.jobs
        return _result(bridge.call(jobs, jobs.get, _job_id(result_id)), result_id)

    async def aget_result(self, result_id: str) -> TaskResult:
        jobs = self.jobs
        return _result(await bridge.acall(jobs, jobs.get, _job_id(result_id)), result_id)

    def check(self, **kwargs: Any) -> Iterator[checks.CheckMessage]:
        try:
            jobs = self.jobs
        except (ValueError, ImportError) as exc:
            yield checks.Error(str(exc), id="asyncjobs.E001")
            return
        if RUNNER_SLUG not in jobs.workflows:
            yield checks.Error(_no_runner(jobs), id="asyncjobs.E002")

    def _queued(self, job: Job) -> Job:
        idle.check_runs_here(self.jobs, job)
        return job


def _arguments(task: Task, args: Any, kwargs: Any) -> dict[str, Any]:
    """``Jobs.queue``'s arguments for one call of ``task``, its options' included."""
    args, kwargs = normalize_json(args), normalize_json(kwargs)
    return {
        "workflow": RUNNER_SLUG,
        "input": job_input(task, args, kwargs),
        "queue": task.queue_name,
        "wait_until": _aware(task.run_after),
        "priority": task.priority,
        "meta": {KEEP_KEY: True},  # so that get_result finds it
        **task_options.queue_extras(task, args, kwargs),
    }


def _with_runner(jobs: Jobs) -> Jobs:
    """``jobs``, which must run Django's tasks: refused before anything opens its database."""
    if RUNNER_SLUG not in jobs.workflows:
        raise ImproperlyConfigured(_no_runner(jobs))
    return jobs


def _result(job: Job | None, result_id: str) -> TaskResult:
    if job is None or job.workflow_slug != RUNNER_SLUG:
        raise TaskResultDoesNotExist(result_id)
    return task_result(job, django_task(job))


def _job_id(result_id: str) -> int:
    try:
        return check_id(int(str(result_id)))
    except ValueError:
        raise TaskResultDoesNotExist(result_id) from None


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None or timezone.is_aware(moment):
        return moment
    aware: datetime = timezone.make_aware(moment)
    return aware


def _no_runner(jobs: Jobs) -> str:
    return (
        f"{jobs!r} has no workflow {RUNNER_SLUG!r} to run Django tasks: add "
        "asyncjobs.integrations.django.task_runner() to its workflows"
    )
