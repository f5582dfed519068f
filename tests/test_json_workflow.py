"""JSON-style workflows: passes, conditions, parallel steps, retries; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import pytest

import asyncjobs
from asyncjobs.models import Job

MakeJobs = Callable[..., asyncjobs.Jobs]


def done(step_id: str, slug: str = "record") -> Callable[..., bool]:
    def condition(*, job: Job) -> bool:
        status = job.task_status.get(slug, {}).get(step_id)
        return status is not None and status.complete

    return condition


class Recorder:
    """A task handler that records its calls and fails while ``failures`` is positive."""

    def __init__(self, failures: int = 0) -> None:
        self.calls: list[dict[str, Any]] = []
        self.failures = failures

    async def __call__(self, *, input: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(input)
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError(f"failing {input}")
        return {"echo": input.get("value")}


def record_task(recorder: Recorder, **options: Any) -> asyncjobs.Task:
    return asyncjobs.Task("record", recorder, **options)


async def run_flow(
    make_jobs: MakeJobs, steps: list[dict[str, Any]], *, tasks: list[Any], **options: Any
) -> tuple[asyncjobs.Jobs, Job]:
    jobs = make_jobs(tasks=tasks, workflows=[asyncjobs.Workflow("flow", steps, **options)])
    job = await jobs.queue(workflow="flow", input={"post": 7})
    await jobs.run()
    stored = await jobs.get(job.id)
    assert stored is not None
    return jobs, stored


async def test_a_step_whose_condition_waits_for_another_runs_in_a_later_pass(
    make_jobs: MakeJobs,
) -> None:
    recorder = Recorder()
    steps = [
        {"id": "1", "task": "record", "input": lambda job: {"value": job.input["post"]}},
        {
            "id": "2",
            "task": "record",
            "input": lambda job: {"value": job.task_status["record"]["1"].output["echo"] + 1},
            "condition": done("1"),
            "completes_job": True,
        },
    ]
    _, job = await run_flow(make_jobs, steps, tasks=[record_task(recorder)])
    assert job.status == "completed"
    assert job.total_tried == 1
    assert [(e.task_id, e.state) for e in job.log] == [("1", "succeeded"), ("2", "succeeded")]
    assert recorder.calls == [{"value": 7}, {"value": 8}]


async def test_steps_of_one_pass_run_in_parallel(make_jobs: MakeJobs) -> None:
    arrived = 0
    all_in = anyio.Event()

    async def meet(*, input: dict[str, Any]) -> None:
        nonlocal arrived
        arrived += 1
        if arrived == 3:
            all_in.set()
        with anyio.fail_after(5):
            await all_in.wait()

    steps = [{"id": str(n), "task": "meet"} for n in range(3)]
    _, job = await run_flow(make_jobs, steps, tasks=[asyncjobs.Task("meet", meet)])
    assert job.status == "completed"
    assert sorted(e.task_id for e in job.log) == ["0", "1", "2"]


async def test_a_completes_job_step_ends_the_job(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    steps = [
        {"id": "1", "task": "record", "completes_job": True},
        {"id": "2", "task": "record", "condition": done("1")},
    ]
    _, job = await run_flow(make_jobs, steps, tasks=[record_task(recorder)])
    assert job.status == "completed"
    assert [e.task_id for e in job.log] == ["1"]


async def test_the_job_completes_when_no_runnable_step_is_left(make_jobs: MakeJobs) -> None:
    recorder = Recorder()
    steps = [
        {"id": "1", "task": "record"},
        {"id": "2", "task": "record", "condition": lambda job: False},
        {"id": "3", "task": "record", "condition": lambda: True},
    ]
    _, job = await run_flow(make_jobs, steps, tasks=[record_task(recorder)])
    assert job.status == "completed"
    assert [e.task_id for e in job.log] in (["1", "3"], ["3", "1"])


async def test_inline_steps_are_logged_as_inline(make_jobs: MakeJobs) -> None:
    def double(*, input: dict[str, Any], job: Job) -> dict[str, Any]:
        return {"doubled": input["value"] * 2, "job": job.id}

    steps = [{"id": "x", "inline_task": double, "input": lambda job: {"value": job.input["post"]}}]
    _, job = await run_flow(make_jobs, steps, tasks=[])
    assert job.status == "completed"
    assert job.task_status["inline"]["x"].output == {"doubled": 14, "job": job.id}


async def test_a_failed_step_is_logged_and_retried_under_its_step_retries(
    make_jobs: MakeJobs,
) -> None:
    recorder = Recorder(failures=1)
    steps = [
        {"id": "1", "task": "other"},
        {"id": "2", "task": "record", "retries": 1, "condition": done("1", "other")},
    ]
    other = asyncjobs.Task("other", Recorder())
    jobs, job = await run_flow(make_jobs, steps, tasks=[record_task(recorder), other])
    assert job.status == "queued"
    assert [(e.task_id, e.state) for e in job.log] == [("1", "succeeded"), ("2", "failed")]
    assert job.log[1].error is not None
    assert job.log[1].error["name"] == "RuntimeError"
    await jobs.run()
    job = await jobs.get(job.id)  # type: ignore[assignment]
    assert job.status == "completed"
    assert [(e.task_id, e.state) for e in job.log][-1] == ("2", "succeeded")
    assert job.total_tried == 2


@pytest.mark.parametrize(
    ("task_retries", "workflow_retries", "runs"), [(2, None, 3), (None, 1, 2), (None, None, 1)]
)
async def test_steps_without_retries_inherit_the_task_then_the_workflow(
    make_jobs: MakeJobs, task_retries: int | None, workflow_retries: int | None, runs: int
) -> None:
    recorder = Recorder(failures=99)
    jobs = make_jobs(
        tasks=[record_task(recorder, retries=task_retries)],
        workflows=[
            asyncjobs.Workflow("flow", [{"id": "1", "task": "record"}], retries=workflow_retries)
        ],
    )
    job = await jobs.queue(workflow="flow")
    statuses = [(await jobs.run()).job_status.get(job.id) for _ in range(runs + 1)]
    assert statuses == ["error"] * (runs - 1) + ["error-reached-max-retries", None]
    final = await jobs.get(job.id)
    assert final is not None
    assert final.status == "failed"
    assert [e.state for e in final.log] == ["failed"] * runs
    assert final.error is not None and final.error["name"] == "RuntimeError"


async def test_on_fail_of_a_registered_task_is_called_for_step_failures(
    make_jobs: MakeJobs,
) -> None:
    seen: list[tuple[Any, int]] = []

    def on_fail(*, input: Any, job: Job) -> None:
        seen.append((input, job.id))

    steps = [{"id": "1", "task": "record", "input": {"value": 1}}]
    _, job = await run_flow(
        make_jobs, steps, tasks=[record_task(Recorder(failures=1), on_fail=on_fail)]
    )
    assert job.status == "failed"
    assert seen == [({"value": 1}, job.id)]


async def test_a_completed_step_is_not_run_again_on_retry(make_jobs: MakeJobs) -> None:
    first, second = Recorder(), Recorder(failures=1)
    steps = [
        {"id": "1", "task": "first"},
        {"id": "2", "task": "second", "condition": done("1", "first"), "retries": 1},
    ]
    tasks = [asyncjobs.Task("first", first), asyncjobs.Task("second", second)]
    jobs, job = await run_flow(make_jobs, steps, tasks=tasks)
    await jobs.run()
    assert (await jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]
    assert (len(first.calls), len(second.calls)) == (1, 2)


def test_a_step_naming_an_unregistered_task_is_refused_when_jobs_is_built() -> None:
    flow = asyncjobs.Workflow("flow", [{"id": "1", "task": "missing"}])
    with pytest.raises(ValueError, match="'missing'"):
        asyncjobs.Jobs(workflows=[flow], auto_run=[])


@pytest.mark.parametrize(
    ("steps", "error", "match"),
    [
        ([], ValueError, "empty step list"),
        (["nope"], TypeError, "must be a dict"),
        ([{"id": "1", "task": "t"}, {"id": "1", "task": "t"}], ValueError, "unique"),
        ([{"task": "t"}], ValueError, "unique non-empty string 'id'"),
        ([{"id": "1", "task": "t", "when": 1}], ValueError, "unknown key"),
        ([{"id": "1"}], ValueError, "exactly one of"),
        ([{"id": "1", "task": "t", "inline_task": print}], ValueError, "exactly one of"),
        ([{"id": "1", "task": 3}], TypeError, "task slug"),
        ([{"id": "1", "task": "t", "condition": True}], TypeError, "condition must be callable"),
        ([{"id": "1", "task": "t", "condition": lambda post: 1}], TypeError, "post"),
        ([{"id": "1", "task": "t", "input": "x"}], TypeError, "'input' must be a dict"),
        ([{"id": "1", "task": "t", "input": lambda req: 1}], TypeError, "req"),
        ([{"id": "1", "task": "t", "completes_job": "yes"}], TypeError, "completes_job"),
        ([{"id": "1", "task": "t", "retries": "2"}], TypeError, "retries"),
        ([{"id": "1", "inline_task": lambda request: 1}], TypeError, "request"),
    ],
)
def test_malformed_steps_are_refused_when_defined(
    steps: list[Any], error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match):
        asyncjobs.Workflow("flow", steps)


async def test_a_step_logged_while_its_sibling_fails_keeps_its_entry(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = anyio.Event()
    runs: list[str] = []

    async def fine(*, input: dict[str, Any]) -> None:
        runs.append("fine")

    async def fail(*, input: dict[str, Any]) -> None:
        await written.wait()
        raise RuntimeError("sibling failed")

    steps = [{"id": "ok", "task": "fine"}, {"id": "bad", "task": "fail", "retries": 1}]
    jobs = make_jobs(
        tasks=[asyncjobs.Task("fine", fine), asyncjobs.Task("fail", fail)],
        workflows=[asyncjobs.Workflow("flow", steps)],
    )
    original = jobs.store.write_logs  # where step logs are written, several jobs at once

    async def committed_then_slow(logs: Any, tokens: Any, **options: Any) -> set[int]:
        owned = await original(logs, tokens, **options)
        if not written.is_set():
            written.set()  # the sibling fails now, while this caller is still returning
            await anyio.sleep(0.05)
        return owned

    monkeypatch.setattr(jobs.store, "write_logs", committed_then_slow)
    job = await jobs.queue(workflow="flow")
    await jobs.run()
    stored = await jobs.get(job.id)
    assert stored is not None
    assert [(e.task_id, e.state) for e in stored.log] == [("ok", "succeeded"), ("bad", "failed")]
    assert runs == ["fine"]
