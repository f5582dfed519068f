"""A job whose outcome cannot be stored fails its own attempt, never its batch.

Writing a job's outcome can fail for a reason of the job's own: a value that passed the checks
at validation but that the encoder or the database refuses when written (an output nested just
deep enough to pass the check and exceed the interpreter's recursion limit when written). That
is the job's failure: one counted try, retried under the usual rules, eventually failed for
good with an error naming the value, while the other jobs of its batch complete normally.
(A lost connection is not the job's fault: see test_connection_loss.py.) SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import pytest

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]
DEEPEST = 5000
SPAN = 150  # the engine's frames between run() and its writes are fewer than this


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"a": value}
    return value


def encodable_here() -> int:
    """The deepest value ``json.dumps`` encodes from this point of the stack."""
    low, high = 0, sys.getrecursionlimit()
    while low < high:
        middle = (low + high + 1) // 2
        try:
            json.dumps(nested(middle))
        except RecursionError:
            high = middle - 1
        else:
            low = middle
    return low


class Shifting(dict):  # type: ignore[type-arg]
    """An output that reads as JSON when checked and as something else when written."""

    def __init__(self) -> None:
        super().__init__(checked=True)
        self.reads = 0

    def items(self) -> Any:
        self.reads += 1
        return super().items() if self.reads == 1 else [("written", object())]


@asyncjobs.task("deep")
async def deep(*, input: dict) -> dict:
    return nested(input["depth"])


@asyncjobs.task("fine")
async def fine(*, input: dict) -> dict:
    return {"n": input["n"]}


@asyncjobs.task("shifting", retries=1)
async def shifting() -> dict:
    return Shifting()


@asyncjobs.workflow("shifting-step")
async def shifting_step(*, tasks: Any) -> None:
    await tasks.fine("1", input={"n": 1})
    await tasks.shifting("2")


@asyncjobs.workflow("shifting-inline")
async def shifting_inline(*, inline_task: Any) -> None:
    await inline_task("1", task=Shifting)


def make(make_jobs: MakeJobs) -> asyncjobs.Jobs:
    return make_jobs(tasks=[deep, fine, shifting], workflows=[shifting_step, shifting_inline])


async def failure_of(jobs: asyncjobs.Jobs, job_id: int) -> tuple[str, int, str, str]:
    job = await jobs.get(job_id)
    assert job is not None and job.error is not None
    return job.status, job.total_tried, job.error["name"], job.error["message"]


@pytest.mark.parametrize("sequential", [False, True], ids=["parallel", "sequential"])
async def test_an_output_too_deep_to_store_fails_only_its_own_job(
    make_jobs: MakeJobs, sequential: bool
) -> None:
    jobs = make(make_jobs)
    top = encodable_here()
    depths = [*range(top - SPAN, top + 1), DEEPEST]
    fine_ids, deep_ids = [], []
    for depth in depths:
        deep_ids.append((await jobs.queue(task="deep", input={"depth": depth})).id)
        if depth % 10 == 0:
            fine_ids.append((await jobs.queue(task="fine", input={"n": depth})).id)
    result = await jobs.run(limit=len(depths) + len(fine_ids), sequential=sequential)
    assert [result.job_status[job_id] for job_id in fine_ids] == ["success"] * len(fine_ids)
    failed = [i for i in deep_ids if result.job_status[i] != "success"]
    assert failed and failed[-1] == deep_ids[-1]  # at least the deepest one
    for job_id in failed:  # the others completed; reading their output back is another matter
        status, tried, name, message = await failure_of(jobs, job_id)
        assert (result.job_status[job_id], status, tried) == (
            "error-reached-max-retries",
            "failed",
            1,
        )
        assert name == "ValidationError"
        assert "output of task 'deep'" in message
        assert "recursion" in message or "deeper than" in message  # the write, or the check


async def test_an_output_that_cannot_be_written_is_retried_then_fails_for_good(
    make_jobs: MakeJobs,
) -> None:
    jobs = make(make_jobs)
    before = await jobs.queue(task="fine", input={"n": 1})
    job = await jobs.queue(task="shifting")
    after = await jobs.queue(task="fine", input={"n": 2})
    result = await jobs.run()
    assert result.job_status == {before.id: "success", job.id: "error", after.id: "success"}
    retried = await jobs.get(job.id)
    assert retried is not None
    assert (retried.status, retried.total_tried, retried.log[0].state) == ("queued", 1, "failed")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    status, tried, name, message = await failure_of(jobs, job.id)
    assert (status, tried, name) == ("failed", 2, "ValidationError")
    assert message.startswith("output of task 'shifting' (1) could not be stored: ")
    assert "not JSON serializable" in message


@pytest.mark.parametrize("workflow", ["shifting-step", "shifting-inline"])
async def test_a_step_output_that_cannot_be_written_fails_only_its_job(
    make_jobs: MakeJobs, workflow: str
) -> None:
    jobs = make(make_jobs)
    job = await jobs.queue(workflow=workflow)
    other = await jobs.queue(task="fine", input={"n": 1})
    result = await jobs.run()
    assert result.job_status[other.id] == "success"
    while result.job_status.get(job.id) == "error":  # the step's own retry, if it has one
        result = await jobs.run()
    assert result.job_status[job.id] == "error-reached-max-retries"
    status, _, name, message = await failure_of(jobs, job.id)
    assert (status, name) == ("failed", "ValidationError")
    assert "could not be stored" in message
    failed = await jobs.get(job.id)
    assert failed is not None
    assert [entry.state for entry in failed.log][-1] == "failed"


async def test_a_failure_that_cannot_be_written_is_written_without_its_log_entry(
    make_jobs: MakeJobs,
) -> None:
    """The failed step's log entry holds its input, which here cannot be written either."""

    @asyncjobs.task("refuses")
    async def refuses(*, input: dict) -> None:
        raise RuntimeError("the step's own failure")

    @asyncjobs.workflow("shifting-input", retries=1)
    async def shifting_input(*, tasks: Any) -> None:
        await tasks.refuses("1", input=Shifting())

    jobs = make_jobs(tasks=[refuses, fine], workflows=[shifting_input])
    job = await jobs.queue(workflow="shifting-input")
    other = await jobs.queue(task="fine", input={"n": 1})
    assert (await jobs.run()).job_status == {job.id: "error", other.id: "success"}
    retried = await jobs.get(job.id)
    assert retried is not None
    assert (retried.status, retried.total_tried, retried.log) == ("queued", 1, [])
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    status, tried, name, message = await failure_of(jobs, job.id)
    assert (status, tried, name) == ("failed", 2, "ValidationError")
    assert message.startswith(f"the outcome of job {job.id} could not be stored: ")


async def test_a_cancellation_message_the_database_would_refuse_still_cancels(
    make_jobs: MakeJobs,
) -> None:
    @asyncjobs.task("cancels")
    async def cancels() -> None:
        raise asyncjobs.JobCancelled("stop\x00here")

    jobs = make_jobs(tasks=[cancels])
    job = await jobs.queue(task="cancels")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    cancelled = await jobs.get(job.id)
    assert cancelled is not None and cancelled.error is not None
    assert (cancelled.status, cancelled.total_tried) == ("cancelled", 0)
    assert cancelled.error["message"] == "stop\ufffdhere"  # the same on both backends


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)  # SQLite takes any value
async def test_a_value_the_driver_refuses_is_not_a_lost_connection(
    make_jobs: MakeJobs,
) -> None:
    """Told apart from a lost connection, so that it fails the job instead of leaving it to its
    lease for ever."""
    from asyncjobs.errors import ConnectionLost

    jobs = make(make_jobs)
    job = await jobs.queue(task="fine", input={"n": 1})
    store = jobs.store
    with pytest.raises(asyncjobs.StorageError) as refused:
        await store.update_owned(
            job.id, "token", live_after=job.created_at, values={"total_tried": "many"}
        )
    assert not isinstance(refused.value, ConnectionLost)
    assert (await jobs.run()).job_status == {job.id: "success"}
