"""Workflows written as data (JSON-style step lists): run pass after pass while their
conditions hold, as the ordinary handler of their ``Workflow``."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

import anyio

from asyncjobs import injection
from asyncjobs.errors import ConnectionLost, JobCancelled, JobRunAborted, Suspended
from asyncjobs.step_runner import INLINE, StepRunner, TaskFailed

WAITS = ("sleep", "wait_for_signal")  # durable waits a step may be, logged under that slug


def step_slug(step: Mapping[str, Any]) -> str:
    for kind in WAITS:
        if kind in step:
            return kind
    return INLINE if "inline_task" in step else str(step["task"])


async def run_step_list(runner: StepRunner, steps: Sequence[Mapping[str, Any]]) -> None:
    """Run passes until a ``completes_job`` step is done or no runnable step is left.

    Every pass completes at least one step or raises, and a complete step never runs again,
    so the loop ends after at most ``len(steps)`` passes.
    """
    while not any(s.get("completes_job") and _complete(runner, s) for s in steps):
        pending = [s for s in steps if not _complete(runner, s)]
        ready = [s for s in pending if await _condition_holds(runner, s)]
        if not ready:
            return
        await gather([_runner_for(runner, s) for s in ready])


def _complete(runner: StepRunner, step: Mapping[str, Any]) -> bool:
    status = runner.attempt.task_status(step_slug(step), step["id"])
    if "sleep" in step and status is not None:  # logged when it starts: done once it is time
        return datetime.fromisoformat(status.output["until"]) <= runner.attempt.clock()
    return status is not None and status.complete


async def _condition_holds(runner: StepRunner, step: Mapping[str, Any]) -> bool:
    condition = step.get("condition")
    if condition is None:
        return True
    return bool(await injection.call(condition, {"job": runner.attempt.snapshot()}))


def _runner_for(
    runner: StepRunner, step: Mapping[str, Any]
) -> Callable[[], Coroutine[Any, Any, Any]]:
    async def run() -> Any:
        value = step.get("input")
        if callable(value):
            value = await injection.call(value, {"job": runner.attempt.snapshot()})
        if any(kind in step for kind in WAITS):
            return await _wait(runner, step)
        if "inline_task" in step:
            return await runner.inline_task(
                step["id"], task=step["inline_task"], input=value, retries=step.get("retries")
            )
        return await runner.call_task(step["task"], step["id"], value or {}, step.get("retries"))

    return run


async def _wait(runner: StepRunner, step: Mapping[str, Any]) -> Any:
    waits = runner.durable(runner) if runner.durable is not None else {}
    if "sleep" in step:
        return await waits["sleep"](step["id"], step["sleep"])
    wait = waits["wait_for_signal"]
    return await wait(step["id"], step["wait_for_signal"], timeout=step.get("timeout"))


_PRIORITY = (JobRunAborted, ConnectionLost, JobCancelled, TaskFailed, Suspended)


async def gather(calls: Sequence[Callable[[], Coroutine[Any, Any, Any]]]) -> None:
    """Run ``calls`` concurrently; on failure raise one exception, the most decisive first."""
    try:
        async with anyio.create_task_group() as tg:
            for call in calls:
                tg.start_soon(call)
    except BaseExceptionGroup as group:
        raise _decisive(group) from None


def our_signal(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The most decisive of the engine's own signals (a cancellation, a failed step, a lost
    run) that a task group in a handler wrapped in ``group``; ``None`` when it holds none."""
    found = _decisive(group)
    return found if isinstance(found, _PRIORITY) else None


def _decisive(group: BaseExceptionGroup[BaseException]) -> BaseException:
    leaves: list[BaseException] = list(_leaves(group))
    for kind in _PRIORITY:
        for exc in leaves:
            if isinstance(exc, kind):
                return exc
    return leaves[0]


def _leaves(exc: BaseException) -> Iterator[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc
