"""``@task`` and ``@workflow``: typed decorator forms of ``Task`` and ``Workflow``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from pydantic import BaseModel

from asyncjobs.checks import Seconds
from asyncjobs.definitions import Hook, In, KeyFunction, Output, Schedule, Task, Workflow
from asyncjobs.policies import Concurrency
from asyncjobs.retry import RetriesLike

R = TypeVar("R", bound=Output)  # what the decorated function returns (awaited, if async)


class TaskDecorator(Generic[In]):
    """What ``@task(slug, ...)`` returns: it turns the function below it into a ``Task``."""

    __slots__ = ("options", "slug")

    def __init__(self, slug: str, options: Mapping[str, Any]) -> None:
        self.slug, self.options = slug, options

    @overload
    def __call__(self, handler: Callable[..., Awaitable[R]], /) -> Task[In, R]: ...

    @overload
    def __call__(self, handler: Callable[..., R], /) -> Task[In, R]: ...

    def __call__(self, handler: Callable[..., Any], /) -> Task[In, Any]:
        return Task(self.slug, handler, **self.options)


class WorkflowDecorator(Generic[In]):
    """What ``@workflow(slug, ...)`` returns: it turns the function below it into a ``Workflow``."""

    __slots__ = ("options", "slug")

    def __init__(self, slug: str, options: Mapping[str, Any]) -> None:
        self.slug, self.options = slug, options

    @overload
    def __call__(self, handler: Callable[..., Awaitable[R]], /) -> Workflow[In, R]: ...

    @overload
    def __call__(self, handler: Callable[..., R], /) -> Workflow[In, R]: ...

    def __call__(self, handler: Callable[..., Any], /) -> Workflow[In, Any]:
        return Workflow(self.slug, handler, **self.options)


def task(
    slug: str,
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
) -> TaskDecorator[In]:
    """Decorator form of :class:`Task`: ``@task("send-email", input_schema=EmailIn)``.

    Takes the keyword arguments of ``Task``; see there.
    """
    return TaskDecorator(slug, _options(locals()))


def workflow(
    slug: str,
    *,
    input_schema: type[In] | None = None,
    queue: str | None = None,
    retries: RetriesLike = None,
    label: str | None = None,
    schedule: Schedule | Sequence[Schedule] = (),
    concurrency: Concurrency | KeyFunction | None = None,
    priority: int = 0,
    timeout: Seconds | None = None,
) -> WorkflowDecorator[In]:
    """Decorator form of :class:`Workflow`: ``@workflow("onboard-user", queue="q")``.

    Takes the keyword arguments of ``Workflow``; see there.
    """
    return WorkflowDecorator(slug, _options(locals()))


def _options(arguments: Mapping[str, Any]) -> dict[str, Any]:
    # Every keyword, spelled out above for type checkers and IDEs, passes through as given.
    return {name: value for name, value in arguments.items() if name != "slug"}
