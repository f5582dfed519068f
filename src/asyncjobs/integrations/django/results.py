"""Django ``TaskResult`` objects read from the asyncjobs jobs that run Django tasks.

A Django task becomes one job of the ``django-task`` workflow (see :mod:`.runner`); its input
names the task function and holds the call::

    {"task": "myapp.tasks.send_mail", "backend": "default",
     "args": [...], "kwargs": {...}, "run_after": "2026-05-01T03:00:00+00:00" | None}

and its output, once completed, is ``{"return_value": ...}``.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from django.utils.module_loading import import_string

from asyncjobs.integrations.django.tasks_api import (
    Task,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from asyncjobs.models import Job

RUNNER_SLUG = "django-task"
RETURN_KEY = "return_value"
WORKER_ID = "asyncjobs"
CANCELLED_PATH = "asyncjobs.errors.JobCancelled"

STATUSES = {
    "queued": TaskResultStatus.READY,
    "waiting": TaskResultStatus.READY,
    "suspended": TaskResultStatus.RUNNING,
    "processing": TaskResultStatus.RUNNING,
    "completed": TaskResultStatus.SUCCESSFUL,
    "failed": TaskResultStatus.FAILED,
    "cancelled": TaskResultStatus.FAILED,
}


def job_input(task: Task, args: Any, kwargs: Any) -> dict[str, Any]:
    """The job input that calls ``task(*args, **kwargs)``."""
    run_after: datetime | None = task.run_after
    return {
        "task": task.module_path,
        "backend": task.backend,
        "args": list(args),
        "kwargs": dict(kwargs),
        "run_after": run_after.isoformat() if run_after else None,
    }


def django_task(job: Job) -> Task:
    """The Django task a job runs, with that job's queue, priority and ``run_after``.

    Raises:
        ValueError: the job's input does not name a Django task.
    """
    path = job.input.get("task")
    found = import_string(path) if isinstance(path, str) else None
    if not isinstance(found, Task):
        raise ValueError(f"job {job.id}: {path!r} is not a Django task")
    run_after = job.input.get("run_after")
    return found.using(
        priority=job.priority,
        queue_name=job.queue,
        run_after=datetime.fromisoformat(run_after) if run_after else None,
        backend=job.input.get("backend") or found.backend,
    )


def task_result(job: Job, task: Task, **changes: Any) -> TaskResult:
    """The ``TaskResult`` of ``job`` as stored; ``changes`` override its fields."""
    log = job.log
    fields: dict[str, Any] = {
        "task": task,
        "id": str(job.id),
        "status": STATUSES[job.status],
        "enqueued_at": job.created_at,
        "started_at": log[0].executed_at if log else None,
        "last_attempted_at": log[-1].executed_at if log else None,
        "finished_at": _finished_at(job),
        "args": job.input.get("args", []),
        "kwargs": job.input.get("kwargs", {}),
        "backend": task.backend,
        "errors": errors(job),
        "worker_ids": [WORKER_ID] * len(log),
    }
    fields.update(changes)
    result = TaskResult(**fields)
    if result.status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", return_value(job))
    return result


def return_value(job: Job) -> Any:
    """What the Django task returned, as its job's output holds it."""
    output = job.output
    return output.get(RETURN_KEY) if isinstance(output, dict) else None


def errors(job: Job) -> list[TaskError]:
    """One ``TaskError`` per failed attempt, and the cancellation if it was cancelled."""
    found = [entry.error for entry in job.log if entry.state == "failed" and entry.error]
    if job.error and job.error not in found:
        found.append(job.error)
    return [
        TaskError(exception_class_path=exception_path(e), traceback=_traceback(e)) for e in found
    ]


def exception_path(error: dict[str, Any]) -> str:
    """The dotted path of the exception class an asyncjobs error records."""
    if error.get("cancelled"):
        return CANCELLED_PATH
    name = str(error.get("name", "Exception"))
    for line in reversed(str(error.get("traceback", "")).splitlines()):
        head = line.partition(":")[0].strip()
        if head == name or head.endswith("." + name):
            break
    else:
        head = name
    if "." not in head and hasattr(builtins, head):
        return f"builtins.{head}"
    return head


def _traceback(error: dict[str, Any]) -> str:
    return str(error.get("traceback") or error.get("message") or "")


def _finished_at(job: Job) -> datetime | None:
    if job.status == "completed":
        return job.completed_at
    if job.status in ("failed", "cancelled"):
        return job.updated_at
    return None
