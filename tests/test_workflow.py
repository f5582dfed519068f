"""Workflows: steps, memoization, nesting, parallel steps, hooks, cancellation, errors."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from pydantic import BaseModel

import asyncjobs
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
calls: Counter[str] = Counter()
fail_once: set[str] = set()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    fail_once.clear()


class Doubled(BaseModel):
    value: int


@asyncjobs.task("double", output_schema=Doubled, retries=3)
async def double(*, input: dict) -> dict:
    calls["double"] += 1
    return {"value": input["n"] * 2}


@asyncjobs.task("flaky", retries=3)
async def flaky(*, input: dict) -> dict:
    calls["flaky"] += 1
    if input["key"] not in fail_once:
        fail_once.add(input["key"])
        raise RuntimeError(f"first try of {input['key']} fails")
    return {"ok": True}


@asyncjobs.task("sync-thread")
def sync_thread(*, input: dict) -> dict:
    return {"main": threading.current_thread() is threading.main_thread()}


@asyncjobs.workflow("pipeline", retries=3)
async def pipeline(*, input: dict, tasks: Any, inline_task: Any, job: asyncjobs.Job) -> None:
    calls["pipeline"] += 1
    doubled = await tasks.double("1", input={"n": input["n"]})
    assert isinstance(doubled, Doubled)
    await tasks["flaky"]("2", input={"key": "step2"})
    await inline_task("3", task=lambda input: {"seen": input["v"]}, input={"v": doubled.value})


async def test_a_retried_workflow_skips_succeeded_steps(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[double, flaky], workflows=[pipeline])
    job = await jobs.queue(workflow="pipeline", input={"n": 4})
    assert (await jobs.run()).job_status == {job.id: "error"}
    assert (await jobs.run()).job_status == {job.id: "success"}
    assert calls == {"pipeline": 2, "double": 1, "flaky": 2}
    done = await jobs.get(job.id)
    assert done is not None
    assert [(e.task_slug, e.task_id, e.state) for e in done.log] == [
        ("double", "1", "succeeded"),
        ("flaky", "2", "failed"),
        ("flaky", "2", "succeeded"),
        ("inline", "3", "succeeded"),
    ]
    assert done.task_status["flaky"]["2"].total_tried == 2
    assert done.task_status["inline"]["3"].output == {"seen": 8}
    failed = done.log[1]
    assert failed.output == {}
    assert failed.error is not None
    assert failed.error["name"] == "RuntimeError"
    assert "first try of step2" in failed.error["message"]
    assert "Traceback" in failed.error["traceback"]


async def test_should_restore_false_reruns_the_step(make_jobs: MakeJobs) -> None:
    @asyncjobs.workflow("rerun", retries=1)
    async def rerun(*, tasks: Any) -> None:
        await tasks.double("1", input={"n": 1}, retries=asyncjobs.Retries(should_restore=False))
        await tasks.flaky("2", input={"key": "rerun"})

    jobs = make_jobs(tasks=[double, flaky], workflows=[rerun])
    await jobs.queue(workflow="rerun")
    await jobs.run()
    await jobs.run()
    assert calls["double"] == 2


async def test_should_restore_callable_decides(make_jobs: MakeJobs) -> None:
    seen: list[Any] = []

    async def restore(*, task_status: asyncjobs.TaskStatus, job: asyncjobs.Job) -> bool:
        seen.append((task_status.output, job.total_tried))
        return True

    @asyncjobs.workflow("restore", retries=1)
    async def flow(*, tasks: Any) -> None:
        await tasks.double("1", input={"n": 5}, retries=asyncjobs.Retries(should_restore=restore))
        await tasks.flaky("2", input={"key": "restore"})

    jobs = make_jobs(tasks=[double, flaky], workflows=[flow])
    await jobs.queue(workflow="restore")
    await jobs.run()
    await jobs.run()
    assert calls["double"] == 1
    assert seen == [({"value": 10}, 1)]


async def test_same_step_twice_in_one_run_returns_the_first_output(make_jobs: MakeJobs) -> None:
    outputs = []

    @asyncjobs.workflow("twice")
    async def twice(*, tasks: Any) -> None:
        outputs.append(await tasks.double("x", input={"n": 1}))
        outputs.append(await tasks.double("x", input={"n": 50}))

    jobs = make_jobs(tasks=[double], workflows=[twice])
    await jobs.queue(workflow="twice")
    await jobs.run()
    assert calls["double"] == 1
    assert outputs == [Doubled(value=2), Doubled(value=2)]


async def test_nested_steps_record_their_parent(make_jobs: MakeJobs) -> None:
    @asyncjobs.task("outer")
    async def outer(*, tasks: Any, inline_task: Any) -> dict:
        await tasks.double("inner-1", input={"n": 1})
        await inline_task("inner-2", task=lambda: {"x": 1})
        return {"done": True}

    @asyncjobs.workflow("nest")
    async def nest(*, tasks: Any) -> None:
        await tasks.outer("o")

    jobs = make_jobs(tasks=[double, outer], workflows=[nest])
    job = await jobs.queue(workflow="nest")
    await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None
    assert [(e.task_id, e.parent) for e in done.log] == [
        ("inner-1", {"task_slug": "outer", "task_id": "o"}),
        ("inner-2", {"task_slug": "outer", "task_id": "o"}),
        ("o", None),
    ]


async def test_fifty_parallel_steps_are_all_logged(make_jobs: MakeJobs) -> None:
    @asyncjobs.workflow("fan-out")
    async def fan_out(*, tasks: Any) -> None:
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(lambda i=i: tasks.double(str(i), input={"n": i}))

    jobs = make_jobs(tasks=[double], workflows=[fan_out])
    job = await jobs.queue(workflow="fan-out")
    assert (await jobs.run()).job_status == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None
    assert len(done.log) == 50
    assert {e.task_id for e in done.log} == {str(i) for i in range(50)}
    assert done.task_status["double"]["49"].output == {"value": 98}


async def test_sync_task_handlers_run_in_a_worker_thread(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[sync_thread])
    job = await jobs.queue(task="sync-thread")
    await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None
    assert done.task_status["sync-thread"]["1"].output == {"main": False}


async def test_handlers_receive_only_declared_names(make_jobs: MakeJobs) -> None:
    received: dict[str, Any] = {}

    @asyncjobs.task("everything")
    async def everything(**kwargs: Any) -> None:
        received.update(kwargs)

    jobs = make_jobs(tasks=[everything])
    await jobs.queue(task="everything", input={"a": 1})
    await jobs.run()
    assert set(received) == {"input", "job", "tasks", "inline_task", "jobs"} | {
        "sleep",
        "wait_for_signal",
        "run_child",
    }
    assert received["jobs"] is jobs
    assert received["input"] == {"a": 1}
    assert isinstance(received["job"], asyncjobs.Job)
    assert received["job"].status == "processing"


async def test_input_schema_instance_reaches_the_workflow(make_jobs: MakeJobs) -> None:
    got: list[Any] = []

    @asyncjobs.workflow("typed", input_schema=Doubled)
    async def typed(*, input: Doubled) -> None:
        got.append(input)

    jobs = make_jobs(workflows=[typed])
    await jobs.queue(workflow="typed", input={"value": 3})
    await jobs.run()
    assert got == [Doubled(value=3)]


async def test_hooks_run_on_success_and_on_every_failure(make_jobs: MakeJobs) -> None:
    events: list[tuple[str, Any]] = []

    def on_success(*, input: dict, task_status: Any) -> None:
        events.append(("success", task_status.total_tried if task_status else None))

    async def on_fail(*, job: asyncjobs.Job) -> None:
        events.append(("fail", job.total_tried))

    @asyncjobs.task("hooked", retries=2, on_success=on_success, on_fail=on_fail)
    async def hooked(*, input: dict) -> None:
        calls["hooked"] += 1
        if calls["hooked"] < 3:
            raise RuntimeError("not yet")

    jobs = make_jobs(tasks=[hooked])
    await jobs.queue(task="hooked")
    for _ in range(3):
        await jobs.run()
    assert events == [("fail", 0), ("fail", 1), ("success", 2)]


async def test_on_success_raising_fails_the_step(make_jobs: MakeJobs) -> None:
    def on_success() -> None:
        raise ValueError("hook broke")

    @asyncjobs.task("hook-breaks", on_success=on_success)
    async def hook_breaks() -> None:
        return None

    jobs = make_jobs(tasks=[hook_breaks])
    job = await jobs.queue(task="hook-breaks")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    failed = await jobs.get(job.id)
    assert failed is not None
    assert failed.error is not None
    assert failed.error["message"] == "hook broke"
    assert failed.log[-1].state == "failed"


async def test_job_cancelled_cancels_without_retry_or_log(make_jobs: MakeJobs) -> None:
    @asyncjobs.task("quit", retries=5)
    async def quit_task() -> None:
        raise asyncjobs.JobCancelled("no longer needed")

    @asyncjobs.workflow("quitter", retries=5)
    async def quitter(*, tasks: Any) -> None:
        await tasks.double("1", input={"n": 1})
        await tasks.quit("2")

    jobs = make_jobs(tasks=[double, quit_task], workflows=[quitter])
    job = await jobs.queue(workflow="quitter")
    result = await jobs.run()
    assert result.job_status == {job.id: "error-reached-max-retries"}
    assert result.remaining_jobs_from_queried == 0
    done = await jobs.get(job.id)
    assert done is not None
    assert done.status == "cancelled"
    assert done.total_tried == 0
    assert done.error == {"name": "JobCancelled", "message": "no longer needed", "cancelled": True}
    assert [e.task_id for e in done.log] == ["1"]
    assert (await jobs.run()).no_jobs_remaining


async def test_unknown_task_inside_a_workflow_is_a_workflow_error(make_jobs: MakeJobs) -> None:
    @asyncjobs.workflow("typo")
    async def typo(*, tasks: Any) -> None:
        await tasks["dobule"]("1")

    jobs = make_jobs(tasks=[double], workflows=[typo])
    job = await jobs.queue(workflow="typo")
    await jobs.run()
    done = await jobs.get(job.id)
    assert done is not None
    assert done.status == "failed"
    assert done.error is not None
    assert done.error["name"] == "NotRegistered"
    assert "dobule" in done.error["message"]


async def test_job_of_a_slug_no_longer_registered_fails_for_good(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    old = make_jobs(tasks=[double])
    job = await old.queue(task="double", input={"n": 1})
    new = make_jobs(tasks=[flaky])
    assert (await new.run()).job_status == {job.id: "error-reached-max-retries"}
    done = await new.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("failed", 1)
    assert done.error is not None
    assert "double" in done.error["message"]


async def test_import_string_handlers_are_imported_on_first_use(make_jobs: MakeJobs) -> None:
    good = asyncjobs.Task("imported", "tests.handlers:triple")
    bad = asyncjobs.Task("missing", "tests.handlers_that_do_not_exist:nope")
    jobs = make_jobs(tasks=[good, bad])
    ok = await jobs.queue(task="imported", input={"n": 2})
    broken = await jobs.queue(task="missing")
    await jobs.run()
    done = await jobs.get(ok.id)
    assert done is not None
    assert done.task_status["imported"]["1"].output == {"value": 6}
    failed = await jobs.get(broken.id)
    assert failed is not None
    assert (failed.status, failed.total_tried) == ("failed", 1)
    assert failed.error is not None
    assert "tests.handlers_that_do_not_exist:nope" in failed.error["message"]


async def test_tasks_attribute_access_maps_underscores_to_dashes(make_jobs: MakeJobs) -> None:
    outputs = []

    @asyncjobs.workflow("attr")
    async def attr(*, tasks: Any) -> None:
        outputs.append(await tasks.sync_thread("1"))
        outputs.append("sync-thread" in tasks)
        outputs.append("sync_thread" in dir(tasks))

    jobs = make_jobs(tasks=[sync_thread], workflows=[attr])
    await jobs.queue(workflow="attr")
    await jobs.run()
    assert outputs == [{"main": False}, True, True]


async def test_bad_task_output_fails_the_step(make_jobs: MakeJobs) -> None:
    @asyncjobs.task("returns-list")
    async def returns_list() -> list[int]:
        return [1]

    jobs = make_jobs(tasks=[returns_list])
    job = await jobs.queue(task="returns-list")
    await jobs.run()
    failed = await jobs.get(job.id)
    assert failed is not None
    assert failed.error is not None
    assert "must return a dict" in failed.error["message"]
