"""Every registered definition compiled once into one handler: the runner never asks what kind
of job it runs (a task, a workflow function, a workflow written as a list of steps)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from asyncjobs import injection
from asyncjobs.declarative import our_signal, run_step_list
from asyncjobs.definitions import Handler, Task, Workflow
from asyncjobs.json_values import checked
from asyncjobs.models import JobRow
from asyncjobs.registry import Registry, not_registered
from asyncjobs.retry import Retries
from asyncjobs.step_runner import StepRunner, dumped_output
from asyncjobs.timeouts import limited

Body = Callable[[StepRunner, Any], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How to run a job of one definition.

    ``body(steps, input)`` runs it and returns the job's output as stored; ``retries`` are
    the workflow's (a single-task job has none: its one step's own retries decide);
    ``defer_top_step``: the one step of a single-task job is logged with the job's completion
    rather than by a write of its own.
    """

    retries: Retries | None
    defer_top_step: bool
    body: Body


class Plans:
    """The plan of every task and workflow of ``registry``, by slug."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.tasks = {slug: _task_plan(slug, task) for slug, task in registry.tasks.items()}
        self.workflows = {
            slug: _workflow_plan(flow, registry) for slug, flow in registry.workflows.items()
        }

    def for_row(self, row: JobRow) -> Plan:
        """The plan for a claimed job.

        Raises:
            NotRegistered: its workflow or task is not registered here.
        """
        kind, slug = (
            ("workflow", row.workflow_slug) if row.workflow_slug else ("task", row.task_slug)
        )
        plans = self.workflows if kind == "workflow" else self.tasks
        try:
            return plans[slug or ""]
        except KeyError:
            raise not_registered(kind, slug or "") from None


def _task_plan(slug: str, task: Task) -> Plan:
    """A job queued with ``task=`` is one step, ``tasks[slug]("1", input=...)``; its output is
    the step's (already checked when it was logged)."""

    async def body(steps: StepRunner, input: Any) -> Any:
        return dumped_output(task, await steps.call_task(slug, "1", input, None))

    return Plan(retries=None, defer_top_step=True, body=body)


def _workflow_plan(flow: Workflow, registry: Registry) -> Plan:
    handler = flow.handler
    if isinstance(handler, tuple):
        body = _steps_body(handler)
    else:
        body = _handler_body(flow, handler, registry)
    return Plan(flow.retries, False, _limited(body, flow.timeout, f"workflow {flow.slug!r}"))


def _limited(body: Body, limit: float | None, what: str) -> Body:
    """``body`` bounded by the workflow's timeout: the whole attempt, every step in it."""
    if limit is None:
        return body

    async def bounded(steps: StepRunner, input: Any) -> Any:
        return await limited(body(steps, input), limit, what)

    return bounded


def _handler_body(flow: Workflow, handler: Handler, registry: Registry) -> Body:
    schema = flow.input_schema
    what = f"workflow {flow.slug!r}"

    async def body(steps: StepRunner, input: Any) -> Any:
        # An import string is resolved on first run, so a broken one fails that job (for good).
        fn = registry.handler(handler, what)
        value = schema.model_validate(input) if schema is not None else input
        try:
            returned = await injection.call(fn, steps.injected(value))
        except BaseExceptionGroup as group:  # a task group of the handler's own wraps them
            signal = our_signal(group)
            if signal is None:
                raise
            raise signal from None
        return checked(workflow_output(returned), f"output of {what}")

    return body


def _steps_body(steps_list: Sequence[Mapping[str, Any]]) -> Body:
    """A workflow written as a list of steps; its input reaches the steps through ``job``."""

    async def body(steps: StepRunner, input: Any) -> Any:
        await run_step_list(steps, steps_list)
        return {}

    return body


def workflow_output(returned: Any) -> Any:
    """A workflow handler's return value as stored: a model as its dict, ``{}`` for None, any
    other value as it is (``checked`` refuses what cannot be stored)."""
    if returned is None:
        return {}
    if isinstance(returned, BaseModel):
        return returned.model_dump(mode="json")
    return returned
