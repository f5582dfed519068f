"""Django tasks the tests enqueue through ``TasksBackend`` (module-level, as Django needs)."""

from __future__ import annotations

from typing import Any

import tests.django_site  # noqa: F401  (Django set up before @task)
from asyncjobs import Backoff, Retries
from asyncjobs.integrations.django import options
from asyncjobs.integrations.django.tasks_api import TaskContext

try:
    from django.tasks import task
except ImportError:
    from django_tasks import task


class Refused(Exception):
    """A task's own error, so that the error's class path is checked."""


@task
def add(a: int, b: int = 0) -> int:
    return a + b


@task(queue_name="emails")
async def shout(text: str) -> dict[str, Any]:
    return {"text": text.upper()}


@task
def refuse(reason: str) -> None:
    raise Refused(reason)


@task(takes_context=True)
def attempt(context: TaskContext) -> int:
    return int(context.attempt)


@task
def enqueue_another(a: int) -> str:
    return str(add.enqueue(a, 1).id)


@task
@options(retries=0)
def refuse_once(reason: str) -> None:
    raise Refused(reason)


@task
@options(retries=Retries(attempts=2), backoff=Backoff(delay=60))
def refuse_later(reason: str) -> None:
    raise Refused(reason)


@task
@options(concurrency=lambda order, **kwargs: f"order-{order}")
def confirm(order: int, note: str = "") -> int:
    return order


@options(concurrency="one-at-a-time", idempotency_key=lambda order: f"mail-{order}")
@task
async def mail(order: int) -> int:
    return order
