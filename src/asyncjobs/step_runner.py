"""Workflow steps: ``tasks.slug(...)`` / ``inline_task(...)``, memoization and step logging."""

from __future__ import annotations

import asyncio
import keyword
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from asyncjobs import injection, telemetry
from asyncjobs.attempt import Attempt, new_log_entry, unstorable
from asyncjobs.checks import HANDLER_ARGS
from asyncjobs.definitions import Task
from asyncjobs.errors import (
    ConnectionLost,
    HandlerImportError,
    JobCancelled,
    JobRunAborted,
    NotRegistered,
    WriteRefused,
)
from asyncjobs.json_values import checked
from asyncjobs.models import TaskStatus
from asyncjobs.registry import Registry
from asyncjobs.retry import Retries, RetriesLike, as_retries, merge_retries
from asyncjobs.timeouts import limited

INLINE = "inline"


class TaskFailed(Exception):
    """A step raised; carries what the retry logic needs about that step."""

    def __init__(self, step: Step, status: TaskStatus | None, cause: BaseException) -> None:
        super().__init__(str(cause) or "Task handler threw an error")
        self.step = step
        self.status = status
        self.cause = root_cause(cause)


def root_cause(exc: BaseException) -> BaseException:
    """A nested step's failure is reported with the exception that started it."""
    while isinstance(exc, TaskFailed):
        exc = exc.cause
    return exc


async def stray(exc: asyncio.CancelledError) -> bool:
    """Whether a ``CancelledError`` caught around user code is that code's own failure.

    A handler that awaits a cancelled future, or a library raising ``CancelledError`` of its
    own, fails like with any other exception. A cancellation of this task (asyncio counts its
    pending requests, anyio's scopes included) or of a scope around it is ours: when a scope
    was cancelled but has not delivered yet, the checkpoint raises that cancellation instead.
    """
    if anyio.get_cancelled_exc_class() is not asyncio.CancelledError:
        return True  # another event loop: its own cancellation is not asyncio's
    task = asyncio.current_task()
    if task is None or task.cancelling():
        return False
    await anyio.lowlevel.checkpoint_if_cancelled()
    return True


@dataclass(frozen=True)
class Step:
    """One call of a task or inline task inside a job."""

    slug: str
    task_id: str
    input: Any
    retries: Retries | None
    task: Task | None
    fn: Callable[..., Any] | str
    executed_at: datetime
    parent: dict[str, str] | None

    @property
    def output_name(self) -> str:
        return f"output of task {self.slug!r} ({self.task_id})"


class StepRunner:
    """Builds the ``tasks`` and ``inline_task`` a handler receives, for one attempt.

    ``host`` is what handlers receive as ``jobs`` (the facade that runs them); the engine
    only hands it on.
    """

    def __init__(
        self,
        attempt: Attempt,
        registry: Registry,
        host: object,
        parent: dict[str, str] | None = None,
        durable: Callable[[StepRunner], dict[str, Any]] | None = None,
    ) -> None:
        self.attempt = attempt
        self.registry = registry
        self.host = host
        self.parent = parent
        self.durable = durable  # the durable waits a handler may declare (``durable``)

    @property
    def tasks(self) -> TaskCaller:
        # Made on demand: a stored TaskCaller pointing back here would be a reference cycle
        # per step, left for the cyclic garbage collector (whose pauses stall the host loop).
        return TaskCaller(self)

    def child(self, step: Step) -> StepRunner:
        return StepRunner(
            self.attempt,
            self.registry,
            self.host,
            {"task_slug": step.slug, "task_id": step.task_id},
            self.durable,
        )

    def injected(self, input: Any) -> dict[str, Any]:
        return {
            "input": input,
            "job": injection.Lazy(self.attempt.snapshot),
            "tasks": self.tasks,
            "inline_task": self.inline_task,
            "jobs": self.host,
            **(self.durable(self) if self.durable is not None else {}),
        }

    async def call_task(self, slug: str, task_id: object, input: Any, retries: RetriesLike) -> Any:
        task = self.registry.task(slug)
        merged = merge_retries(task.retries, retries)
        return await self.run_step(self._step(slug, task_id, input, merged, task, task.handler))

    async def inline_task(
        self,
        task_id: object,
        *,
        task: Callable[..., Any],
        input: Any = None,
        retries: RetriesLike = None,
    ) -> Any:
        """Run ``task`` as a memoized step logged under the slug ``"inline"``."""
        injection.check_injectable(task, HANDLER_ARGS, "inline task")
        step = self._step(INLINE, task_id, input, as_retries(retries), None, task)
        return await self.run_step(step)

    def _step(
        self,
        slug: str,
        task_id: object,
        input: Any,
        retries: Retries | None,
        task: Task | None,
        fn: Callable[..., Any] | str,
    ) -> Step:
        if isinstance(input, BaseModel):
            input = input.model_dump(mode="json")
        # Checked here, in the caller, because a failed step logs its input too.
        input = checked(input, f"input of task {slug!r} ({task_id})")
        return Step(slug, str(task_id), input, retries, task, fn, self.attempt.clock(), self.parent)

    async def run_step(self, step: Step) -> Any:
        status = self.attempt.task_status(step.slug, step.task_id)
        if status is not None and status.complete and await self._restore(step, status):
            return typed_output(step.task, status.output)
        try:
            with telemetry.step_span(self.attempt, step):
                output = await self._execute(step, status)
        except (JobCancelled, JobRunAborted, ConnectionLost, HandlerImportError):
            raise
        except Exception as exc:
            raise TaskFailed(step, status, exc) from exc
        except asyncio.CancelledError as exc:
            if not await stray(exc):
                raise
            raise TaskFailed(step, status, exc) from exc
        await self._record(step, status, output)
        return typed_output(step.task, output)

    async def _record(self, step: Step, status: TaskStatus | None, output: Any) -> None:
        entry = new_log_entry(
            slug=step.slug,
            task_id=step.task_id,
            executed_at=step.executed_at,
            completed_at=self.attempt.clock(),
            input=step.input if step.input is not None else {},
            output=output,
            parent=step.parent,
        )
        try:
            await self.attempt.record_step(entry, top_level=step.parent is None, step=step)
        except WriteRefused as refused:
            raise TaskFailed(step, status, unstorable(step.output_name, refused)) from refused

    async def _restore(self, step: Step, status: TaskStatus) -> bool:
        restore = step.retries.should_restore if step.retries else True
        if isinstance(restore, bool):
            return restore
        hook_args = self.hook_args(step, status)
        return bool(await injection.call(restore, hook_args))

    def hook_args(self, step: Step, status: TaskStatus | None) -> dict[str, Any]:
        return {"input": step.input, "job": self.attempt.snapshot(), "task_status": status}

    async def _execute(self, step: Step, status: TaskStatus | None) -> Any:
        fn = self.registry.handler(step.fn, f"task {step.slug!r}")
        value = validated_input(step.task, step.input)
        call = injection.call(fn, self.child(step).injected(value), thread=True)
        limit = step.task.timeout if step.task is not None else None
        raw = await limited(call, limit, f"task {step.slug!r} ({step.task_id})")
        output = checked(dumped_output(step.task, raw), f"output of task {step.slug!r}")
        if step.task is not None and step.task.on_success is not None:
            await injection.call(step.task.on_success, self.hook_args(step, status))
        return output


def validated_input(task: Task | None, raw: Any) -> Any:
    if task is None or task.input_schema is None:
        return raw if raw is not None else {}
    return task.input_schema.model_validate(raw if raw is not None else {})


def dumped_output(task: Task | None, raw: Any) -> dict[str, Any]:
    """The JSON form of a handler's return value (dict, BaseModel or None)."""
    if raw is None:
        raw = {}
    if task is not None and task.output_schema is not None:
        raw = task.output_schema.model_validate(raw)
    if isinstance(raw, BaseModel):
        return raw.model_dump(mode="json")
    if isinstance(raw, dict):
        return raw
    raise TypeError(
        f"a task must return a dict, a pydantic model or None, not {type(raw).__name__}"
    )


def typed_output(task: Task | None, output: Any) -> Any:
    if task is not None and task.output_schema is not None:
        try:
            return task.output_schema.model_validate(output)
        except PydanticValidationError:
            return output
    return output


class TaskCaller:
    """``tasks["slug"](task_id, input=...)`` and ``tasks.slug(task_id, input=...)``."""

    def __init__(self, runner: StepRunner) -> None:
        self._runner = runner

    def __getitem__(self, slug: str) -> Callable[..., Awaitable[Any]]:
        self._runner.registry.task(slug)

        async def call(task_id: object, *, input: Any = None, retries: RetriesLike = None) -> Any:
            return await self._runner.call_task(slug, task_id, input, retries)

        return call

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("__"):
            raise AttributeError(name)
        tasks = self._runner.registry.tasks
        for slug in (name, name.replace("_", "-")):
            if slug in tasks:
                return self[slug]
        raise NotRegistered(f"task {name!r} is not registered")

    def __contains__(self, slug: object) -> bool:
        return slug in self._runner.registry.tasks

    def __dir__(self) -> list[str]:
        slugs = (s.replace("-", "_") for s in self._runner.registry.tasks)
        return sorted(s for s in slugs if s.isidentifier() and not keyword.iskeyword(s))
