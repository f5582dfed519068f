"""Durable waits inside workflows: ``sleep``, ``wait_for_signal`` and ``run_child``, each a
memoized step that suspends the job (see ``suspension``) until time, a signal or a child
comes."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from asyncjobs import telemetry
from asyncjobs.attempt import Attempt, new_log_entry
from asyncjobs.checks import CHILD_TOPIC, check_topic, seconds
from asyncjobs.definitions import Task, Workflow
from asyncjobs.errors import ChildFailed, Suspended
from asyncjobs.json_values import checked
from asyncjobs.models import TaskStatus
from asyncjobs.queueing import prepare_rows
from asyncjobs.step_runner import Step, StepRunner, TaskFailed
from asyncjobs.suspension import Entry, Suspension

SLEEP = "sleep"
SIGNAL = "wait_for_signal"
TIMEOUT = "wait_for_signal:timeout"  # when a wait with a timeout gives up
CHILD = "run_child"
QUEUED = "run_child:queued"  # the child a run_child step queued (its id as output)
NAMES = frozenset({SLEEP, SIGNAL, CHILD})


def injected(steps: StepRunner) -> dict[str, Any]:
    """The three waits a handler may declare, bound to this attempt."""
    waits = DurableWaits(steps)
    return {SLEEP: waits.sleep, SIGNAL: waits.wait_for_signal, CHILD: waits.run_child}


class DurableWaits:
    """The waits of one handler call; ``steps`` gives the attempt and the nesting."""

    def __init__(self, steps: StepRunner) -> None:
        self.steps = steps
        self.attempt: Attempt = steps.attempt

    async def sleep(self, step_id: object, duration: float | timedelta) -> None:
        """Suspend the job until ``duration`` from the first call has passed."""
        task_id, wait = str(step_id), _duration(duration, "sleep duration")
        entry = _last(self.attempt, (SLEEP,), task_id)
        if entry is None:
            until = self.attempt.clock() + wait
            record = self._entry(SLEEP, task_id, {"seconds": wait.total_seconds()}, _at(until))
            raise Suspended(Suspension(until=until, held=False, entry=record))
        until = datetime.fromisoformat(entry["output"]["until"])
        if until > self.attempt.clock():
            raise Suspended(Suspension(until=until, held=False))

    async def wait_for_signal(
        self, step_id: object, topic: str, *, timeout: float | timedelta | None = None
    ) -> dict[str, Any] | None:
        """The oldest signal on ``topic`` no earlier step consumed, once one is there;
        ``None`` when ``timeout`` passes first."""
        task_id = str(step_id)
        topic = check_topic(topic)
        wait = None if timeout is None else _duration(timeout, "wait_for_signal timeout")
        status = self.attempt.task_status(SIGNAL, task_id)
        if status is not None and status.complete:
            return status.output.get("payload")  # type: ignore[no-any-return]
        consumed = _consumed(self.attempt)
        for signal_id, payload in await self.attempt.store.signals(self.attempt.id, topic):
            if signal_id not in consumed and signal_id not in self.attempt.taken:
                self.attempt.taken.add(signal_id)
                received: dict[str, Any] = payload or {}
                output = {"payload": received, "signal": signal_id}
                await self._record(SIGNAL, task_id, {"topic": topic}, output)
                return received
        await self._no_signal(task_id, topic, wait, consumed)
        return None

    async def _no_signal(
        self, task_id: str, topic: str, wait: timedelta | None, consumed: frozenset[int]
    ) -> None:
        check = (topic, consumed)
        deadline = _last(self.attempt, (TIMEOUT,), task_id)
        if deadline is None and wait is not None:
            until = self.attempt.clock() + wait
            record = self._entry(TIMEOUT, task_id, {"topic": topic}, _at(until))
            raise Suspended(Suspension(until=until, held=True, entry=record, check=check))
        if deadline is None:
            raise Suspended(Suspension(until=None, held=True, check=check))
        until = datetime.fromisoformat(deadline["output"]["until"])
        if until > self.attempt.clock():
            raise Suspended(Suspension(until=until, held=True, check=check))
        await self._record(SIGNAL, task_id, {"topic": topic}, {"payload": None, "timeout": True})

    async def run_child(
        self,
        step_id: object,
        *,
        workflow: str | Workflow | None = None,
        task: str | Task | None = None,
        input: Any = None,
        queue: str | None = None,
    ) -> Any:
        """Queue a child job once, suspend until it is finished, return its output.

        Raises:
            ChildFailed: the child failed for good or was cancelled (a failed step).
        """
        task_id = str(step_id)
        status = self.attempt.task_status(CHILD, task_id)
        if status is not None and status.complete:
            return status.output.get("output")
        queued = _last(self.attempt, (QUEUED, CHILD), task_id)
        if queued is None or queued["task_slug"] == CHILD:  # none yet, or the last one failed
            row = await self._child_row(workflow, task, input, queue)
            record = self._child_entry(task_id, row)
            raise Suspended(Suspension(until=None, held=True, entry=record, child=row))
        child_id = int(queued["output"]["child"])
        topic = f"{CHILD_TOPIC}{child_id}"
        outcome = await self.attempt.store.signals(self.attempt.id, topic)
        if not outcome:
            raise Suspended(Suspension(until=None, held=True, check=(topic, frozenset())))
        result = outcome[0][1] or {}
        if result.get("error") is not None:
            step = self._step(task_id, queued["input"])
            raise ChildStepFailed(step, status, ChildFailed(child_id, result["error"]))
        output = {"output": result.get("output"), "child": child_id}
        await self._record(CHILD, task_id, queued["input"], output)
        return output["output"]

    async def _child_row(
        self, workflow: Any, task: Any, input: Any, queue: str | None
    ) -> dict[str, Any]:
        item = {"workflow": workflow, "task": task, "input": input, "queue": queue}
        if queue is None and not _own_queue(self.steps, workflow):
            item["queue"] = self.attempt.row.queue
        rows, _ = await prepare_rows(self.steps.registry, [item], self.attempt.clock())
        traced = telemetry.carried(self.attempt)
        return {**rows[0], "parent_id": self.attempt.id, "trace_context": traced}

    def _child_entry(self, task_id: str, row: dict[str, Any]) -> Entry:
        what = {"workflow": row["workflow_slug"]} if row["workflow_slug"] else {}
        args = {**what, "task": row["task_slug"], "queue": row["queue"], "input": row["input"]}
        args = {k: v for k, v in args.items() if v is not None}
        return self._entry(QUEUED, task_id, args, None)

    def _step(self, task_id: str, input: Any) -> Step:
        now = self.attempt.clock()
        return Step(CHILD, task_id, input, None, None, "", now, self.steps.parent)

    def _entry(self, slug: str, task_id: str, input: Any, output: Any) -> Entry:
        now, parent = self.attempt.clock(), self.steps.parent

        def entry(child_id: int | None) -> dict[str, Any]:
            value = {"child": child_id} if output is None else output
            return new_log_entry(
                slug=slug,
                task_id=task_id,
                executed_at=now,
                completed_at=now,
                input=input,
                output=value,
                parent=parent,
            )

        return entry

    async def _record(self, slug: str, task_id: str, input: Any, output: Any) -> None:
        entry = self._entry(slug, task_id, input, checked(output, f"output of {slug}"))
        await self.attempt.record_step(entry(None), top_level=False, step=None)


class ChildStepFailed(TaskFailed, ChildFailed):
    """``ChildFailed`` as the handler sees it, and a failed step as the engine records it."""

    def __init__(self, step: Step, status: TaskStatus | None, cause: ChildFailed) -> None:
        ChildFailed.__init__(self, cause.child_id, cause.error)
        self.step, self.status, self.cause = step, status, cause


def _own_queue(steps: StepRunner, workflow: Any) -> bool:
    """Whether the child is a workflow with a queue of its own."""
    if workflow is None:
        return False
    slug = workflow.slug if isinstance(workflow, Workflow) else workflow
    return bool(steps.registry.workflow(slug).queue)


def _duration(value: Any, what: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise TypeError(f"{what} must be seconds or a timedelta, got {value!r:.40}")
    wait = timedelta(seconds=seconds(value))
    if wait < timedelta(0):
        raise ValueError(f"{what} must not be negative, got {value!r:.40}")
    return wait


def _at(until: datetime) -> dict[str, Any]:
    return {"until": until.isoformat()}


def _last(attempt: Attempt, slugs: tuple[str, ...], task_id: str) -> dict[str, Any] | None:
    """The last log entry of ``task_id`` under one of ``slugs``."""
    found = None
    for entry in attempt.log:
        if entry["task_slug"] in slugs and entry["task_id"] == task_id:
            found = entry
    return found


def _consumed(attempt: Attempt) -> frozenset[int]:
    """The signals the job's steps consumed (each logs the id it took)."""
    return frozenset(
        entry["output"]["signal"]
        for entry in attempt.log
        if entry["task_slug"] == SIGNAL and "signal" in (entry.get("output") or {})
    )
