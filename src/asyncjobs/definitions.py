"""Definitions users write: tasks, workflows, retries, schedules, leases, access, ordering."""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import tzinfo
from typing import TYPE_CHECKING, Any, Generic, overload

from pydantic import BaseModel
from typing_extensions import TypeVar

from asyncjobs import injection
from asyncjobs.access import Access as Access
from asyncjobs.access import check_access as check_access
from asyncjobs.checks import (
    AFTER_SCHEDULE_ARGS,
    BEFORE_SCHEDULE_ARGS,
    HANDLER_ARGS,
    HOOK_ARGS,
    Seconds,
    check_import_string,
    check_priority,
    check_queue,
    check_slug,
    check_timeout,
)
from asyncjobs.cron import parse
from asyncjobs.errors import HandlerImportError
from asyncjobs.injection import check_injectable
from asyncjobs.policies import Concurrency, as_concurrency
from asyncjobs.retry import Retries, RetriesLike, as_retries
from asyncjobs.steplist import check_steps
from asyncjobs.timezones import zone

if TYPE_CHECKING:
    from asyncjobs.models import Job


DEFAULT_QUEUE = "default"
DEFAULT_LIMIT = 10
DEFAULT_CRON = "* * * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_STOP_TIMEOUT = 10.0  # seconds running jobs get to finish on stop()

Handler = Callable[..., Any] | str
KeyFunction = Callable[..., str | None]
Hook = Callable[..., Any]

# What a Task or Workflow takes as input (its input_schema, else anything) and returns. Only
# outputs a job can store are allowed, which also keeps async handlers (returning awaitables)
# from matching the overloads meant for sync ones.
Output = Mapping[str, object] | BaseModel | None
In = TypeVar("In", default=Any)
Out = TypeVar("Out", bound=Output, default=Any)


@dataclass(frozen=True)
class Schedule:
    """Enqueue the task or workflow on ``queue`` at every tick of ``cron``.

    ``cron`` is read in ``timezone``'s wall-clock time (an IANA name such as
    ``"Europe/Berlin"``): a time skipped when clocks spring forward does not fire that day,
    and one repeated when they fall back fires once, at its first occurrence.
    """

    cron: str
    queue: str = DEFAULT_QUEUE
    before_schedule: Callable[..., Any] | None = None
    after_schedule: Callable[..., Any] | None = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        parse(self.cron)
        zone(self.timezone)
        check_queue(self.queue)
        if self.before_schedule is not None:
            check_injectable(self.before_schedule, BEFORE_SCHEDULE_ARGS, "before_schedule")
        if self.after_schedule is not None:
            check_injectable(self.after_schedule, AFTER_SCHEDULE_ARGS, "after_schedule")

    @property
    def zone(self) -> tzinfo:
        """The ``tzinfo`` of ``timezone``."""
        return zone(self.timezone)


@dataclass(frozen=True, kw_only=True)
class AutoRun:
    """A cron entry that, inside the host event loop, handles schedules and runs due jobs.

    ``cron`` is read in ``timezone``'s wall-clock time, as for :class:`Schedule`.
    """

    cron: str = DEFAULT_CRON
    queue: str = DEFAULT_QUEUE
    limit: int = DEFAULT_LIMIT
    all_queues: bool = False
    disable_scheduling: bool = False
    silent: bool | Mapping[str, bool] = False
    wake_on_queue: bool = True
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        parse(self.cron)
        check_queue(self.queue)
        zone(self.timezone)
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError(f"AutoRun limit must be a positive int, got {self.limit!r}")

    @property
    def zone(self) -> tzinfo:
        """The ``tzinfo`` of ``timezone``."""
        return zone(self.timezone)


def as_auto_run(value: Any) -> Sequence[AutoRun] | Callable[..., Any]:
    """``auto_run=`` as ``Jobs`` keeps it: the entries, or the callable that makes them."""
    if value is None:
        return [AutoRun()]
    if callable(value):
        return value  # type: ignore[no-any-return]
    return auto_run_list(value)


def auto_run_list(value: Any) -> list[AutoRun]:
    entries = list(value)
    for entry in entries:
        if not isinstance(entry, AutoRun):
            raise TypeError(f"auto_run entries must be AutoRun objects, got {entry!r}")
    return entries


def _check_handler(handler: object, allowed: frozenset[str], what: str) -> None:
    if isinstance(handler, str):
        check_import_string(handler, what)
    else:
        check_injectable(handler, allowed, f"{what} handler")  # type: ignore[arg-type]


def _check_schema(schema: object, what: str) -> None:
    if schema is not None and not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"{what} must be a pydantic BaseModel subclass, got {schema!r}")


def _schedules(value: Schedule | Sequence[Schedule]) -> tuple[Schedule, ...]:
    items = (value,) if isinstance(value, Schedule) else tuple(value)
    for item in items:
        if not isinstance(item, Schedule):
            raise TypeError(f"schedule entries must be Schedule objects, got {item!r}")
    return items


@dataclass(frozen=True, init=False)
class Task(Generic[In, Out]):
    """One function, retried on failure; queued on its own or called as a workflow step.

    ``Task[In, Out]`` is generic in its input (the ``input_schema`` model, else ``Any``) and
    its output (what the handler returns), so a type checker checks ``await task(input=...)``
    and ``jobs.queue(task=task, input=...)``. ``priority`` (-100..100, higher runs first) is
    its jobs' unless ``queue()`` gives one; ``timeout`` (seconds) bounds each call of it.
    """

    slug: str
    handler: Handler
    input_schema: type[BaseModel] | None
    output_schema: type[BaseModel] | None
    retries: Retries | None
    label: str | None
    schedule: tuple[Schedule, ...]
    on_success: Hook | None
    on_fail: Hook | None
    concurrency: Concurrency | None
    priority: int
    timeout: float | None

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Awaitable[Out]],
        *,
        input_schema: type[In] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Out] | str,
        *,
        input_schema: type[In] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None: ...

    def __init__(
        self,
        slug: str,
        handler: Handler,
        *,
        input_schema: type[Any] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None:
        what = f"task {slug!r}"
        _check_handler(handler, HANDLER_ARGS, what)
        _check_schema(input_schema, f"{what} input_schema")
        _check_schema(output_schema, f"{what} output_schema")
        for hook_name, hook in (("on_success", on_success), ("on_fail", on_fail)):
            if hook is not None:
                check_injectable(hook, HOOK_ARGS, f"{what} {hook_name}")
        values = {
            "slug": check_slug(slug, "task"),
            "handler": handler,
            "input_schema": input_schema,
            "output_schema": output_schema,
            "retries": as_retries(retries, f"{what} retries"),
            "label": label,
            "schedule": _schedules(schedule),
            "on_success": on_success,
            "on_fail": on_fail,
            "concurrency": as_concurrency(concurrency),
            "priority": check_priority(priority, what),
            "timeout": check_timeout(timeout, what),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    async def __call__(
        self,
        *,
        input: In | None = None,
        job: Job | None = None,
        tasks: Any = None,
        inline_task: Any = None,
        jobs: Any = None,
    ) -> Out:
        """Call the handler directly, as a unit test does: nothing is queued or stored.

        The handler receives, of the arguments given here, the ones it declares. ``input`` is
        passed as given (not validated); a sync handler runs on the calling thread. Always
        awaited, whether the handler is async or not.
        """
        given = {"input": input, "job": job, "tasks": tasks, "inline_task": inline_task}
        available = {k: v for k, v in {**given, "jobs": jobs}.items() if v is not None}
        handler = self.handler
        if isinstance(handler, str):
            handler = import_handler(handler, f"task {self.slug!r}")
        output: Out = await injection.call(handler, available)
        return output


@dataclass(frozen=True, init=False)
class Workflow(Generic[In, Out]):
    """A handler that calls tasks as memoized steps; a retry skips the steps that succeeded.

    ``Workflow[In, Out]`` is generic like :class:`Task`: its input is the ``input_schema``
    model (else ``Any``), its output what an async handler returns (else ``Any``).
    ``priority`` as for a task; ``timeout`` (seconds) bounds each attempt as a whole.
    """

    slug: str
    handler: Handler | tuple[Mapping[str, Any], ...]
    input_schema: type[BaseModel] | None
    queue: str | None
    retries: Retries | None
    label: str | None
    schedule: tuple[Schedule, ...]
    concurrency: Concurrency | None
    priority: int
    timeout: float | None

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Awaitable[Out]],
        *,
        input_schema: type[In] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Out] | str | Sequence[Mapping[str, Any]],
        *,
        input_schema: type[In] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None: ...

    def __init__(
        self,
        slug: str,
        handler: Handler | Sequence[Mapping[str, Any]],
        *,
        input_schema: type[Any] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
        priority: int = 0,
        timeout: Seconds | None = None,
    ) -> None:
        what = f"workflow {slug!r}"
        if isinstance(handler, list | tuple):
            handler = check_steps(handler, what)
        else:
            _check_handler(handler, HANDLER_ARGS, what)
        _check_schema(input_schema, f"{what} input_schema")
        values = {
            "slug": check_slug(slug, "workflow"),
            "handler": handler,
            "input_schema": input_schema,
            "queue": None if queue is None else check_queue(queue),
            "retries": as_retries(retries, f"{what} retries"),
            "label": label,
            "schedule": _schedules(schedule),
            "concurrency": as_concurrency(concurrency),
            "priority": check_priority(priority, what),
            "timeout": check_timeout(timeout, what),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)


def import_handler(path: str, what: str) -> Callable[..., Any]:
    """Import the handler named by ``"package.module:attr"`` (a Task's or Workflow's own, too).

    Raises:
        HandlerImportError: naming ``path`` and why.
    """
    module_name, _, attr = path.partition(":")
    try:
        value: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            value = getattr(value, part)
        if isinstance(value, Task | Workflow):
            value = value.handler
        check_injectable(value, HANDLER_ARGS, f"{what} handler")
    except Exception as exc:
        raise HandlerImportError(f"cannot import {what} handler {path!r}: {exc}") from exc
    return value  # type: ignore[no-any-return]
