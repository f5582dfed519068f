"""asyncjobs' extras for one Django task: retries and backoff, a concurrency key, an
idempotency key, declared with :func:`options` under Django's ``@task``::

    @task
    @options(retries=5, backoff=Backoff(type="exponential", delay=2),
             concurrency=lambda order_id: f"order-{order_id}")
    def send_confirmation(order_id): ...

Each option overrides what :func:`~asyncjobs.integrations.django.task_runner` sets for every
Django task. A key is a ``str`` (the same for every call) or a function called with the task's
own arguments that returns a ``str`` (or ``None``: no key for that call).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from django.utils.module_loading import import_string

from asyncjobs import injection
from asyncjobs.integrations.django.tasks_api import Task
from asyncjobs.retry import Backoff, Retries, RetriesLike, as_retries, merge_retries

F = TypeVar("F")
Key = str | Callable[..., Any]
ATTRIBUTE = "__asyncjobs_options__"


@dataclass(frozen=True)
class TaskOptions:
    """What :func:`options` declared for one Django task."""

    retries: Retries | None = None
    concurrency: Key | None = None
    idempotency_key: Key | None = None


NONE = TaskOptions()


def options(
    *,
    retries: RetriesLike = None,
    backoff: Backoff | None = None,
    concurrency: Key | None = None,
    idempotency_key: Key | None = None,
) -> Callable[[F], F]:
    """Declare asyncjobs' options of the Django task defined by the function below ``@task``.

    Args:
        retries: retries after a failed try (an ``int``, or ``Retries``); ``None``: those of
            ``task_runner``.
        backoff: the wait before each retry; ``None``: that of ``retries`` or ``task_runner``.
        concurrency: the task's concurrency key; calls with the same key never run at once
            (exclusive like ``task_runner``'s ``Concurrency``); ``None``: ``task_runner``'s.
        idempotency_key: while a job queued with this key is unfinished, enqueueing again
            returns that job's result instead of queueing another.

    Raises:
        TypeError: an option of the wrong type, or applied to something else than a function
            or a Django task.
    """
    declared = TaskOptions(
        retries=_retries(retries, backoff),
        concurrency=_key(concurrency, "concurrency"),
        idempotency_key=_key(idempotency_key, "idempotency_key"),
    )

    def decorate(target: F) -> F:
        func = target.func if isinstance(target, Task) else target
        if not callable(func):
            raise TypeError(f"options() decorates a function or a Django task, not {target!r}")
        setattr(func, ATTRIBUTE, declared)
        return target

    return decorate


def options_of(task: Task) -> TaskOptions:
    """The options declared for ``task`` (none: every field ``None``)."""
    found = getattr(task.func, ATTRIBUTE, NONE)
    return found if isinstance(found, TaskOptions) else NONE


def retries_for(task: Task, default: Retries | None) -> Retries | None:
    """The task's retries, field by field over ``task_runner``'s ``default``."""
    return merge_retries(default, options_of(task).retries)


def declared_concurrency(input: Mapping[str, Any]) -> Key | None:
    """The concurrency key the Django task ``input`` names declares, if any."""
    try:
        found = import_string(str(input.get("task")))
    except ImportError:  # not a Django task: its job fails when it runs
        return None
    return options_of(found).concurrency if isinstance(found, Task) else None


async def key_value(declared: Key, input: Mapping[str, Any]) -> str | None:
    """A declared key's value for the call ``input`` holds."""
    if isinstance(declared, str):
        return declared
    args, kwargs = input.get("args", []), input.get("kwargs", {})
    key: str | None = await injection.call_positional(partial(declared, **kwargs), *args)
    return key


def queue_extras(task: Task, args: Any, kwargs: Any) -> dict[str, Any]:
    """The ``Jobs.queue`` arguments ``task``'s options add to one call."""
    declared = options_of(task).idempotency_key
    if declared is None:
        return {}
    key = declared if isinstance(declared, str) else declared(*args, **kwargs)
    return {} if key is None else {"idempotency_key": key}


def _retries(retries: RetriesLike, backoff: Backoff | None) -> Retries | None:
    own = as_retries(retries, "options() retries")
    if backoff is None:
        return own
    if not isinstance(backoff, Backoff):
        raise TypeError(f"options() backoff must be a Backoff, got {backoff!r}")
    if own is None:
        return Retries(backoff=backoff)
    return Retries(attempts=own.attempts, backoff=backoff, should_restore=own.should_restore)


def _key(value: Key | None, name: str) -> Key | None:
    if value is None or callable(value) or (isinstance(value, str) and value):
        return value
    raise TypeError(f"options() {name} must be a non-empty str or a function, got {value!r}")
