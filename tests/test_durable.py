"""Durable waits: sleep, wait_for_signal, jobs.signal and run_child, on both backends."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import anyio
import pytest

import asyncjobs
from asyncjobs.storage.monitoring import queue_counts
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]
calls: Counter[str] = Counter()
DAY = 86_400


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@asyncjobs.task("charge")
async def charge(*, input: dict) -> dict:
    calls["charge"] += 1
    return {"charged": input.get("amount", 0)}


@asyncjobs.workflow("napper")
async def napper(*, tasks: Any, sleep: Any) -> dict:
    await tasks.charge("1", input={"amount": 5})
    await sleep("nap", DAY)
    calls["after"] += 1
    return {"slept": True}


@asyncjobs.workflow("listener")
async def listener(*, input: dict, wait_for_signal: Any) -> dict:
    first = await wait_for_signal("a", "go", timeout=input.get("timeout"))
    second = await wait_for_signal("b", "go", timeout=input.get("timeout"))
    calls["after"] += 1
    return {"first": first, "second": second}


@asyncjobs.workflow("swallower")
async def swallower(*, wait_for_signal: Any) -> dict:
    try:
        got = await wait_for_signal("a", "go")
    except Exception:  # the suspension must pass through a handler's except Exception
        calls["swallowed"] += 1
        raise
    return {"got": got}


@asyncjobs.task("child-task")
async def child_task(*, input: dict) -> dict:
    calls["child"] += 1
    if input.get("fail"):
        raise RuntimeError("child broke")
    return {"doubled": input["n"] * 2}


@asyncjobs.workflow("child-flow")
async def child_flow(*, input: dict, wait_for_signal: Any) -> dict:
    got = await wait_for_signal("w", "release")
    return {"got": got}


@asyncjobs.workflow("parent", retries=1)
async def parent(*, input: dict, run_child: Any) -> dict:
    try:
        out = await run_child("c", task="child-task", input=input)
    except asyncjobs.ChildFailed as exc:
        calls["child-failed"] += 1
        raise exc
    calls["parent-done"] += 1
    return {"child": out}


@asyncjobs.workflow("grandparent")
async def grandparent(*, run_child: Any) -> dict:
    return {"out": await run_child("c", workflow="child-flow")}


async def _run(jobs: asyncjobs.Jobs) -> dict[int, str]:
    statuses: dict[int, str] = {}
    for _ in range(20):
        result = await jobs.run(all_queues=True)
        statuses.update(result.job_status)
        if result.no_jobs_remaining:
            return statuses
    raise AssertionError("not idle")


async def test_sleep_suspends_then_resumes(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(tasks=[charge], workflows=[napper])
    job = await jobs.queue(workflow="napper")
    assert await _run(jobs) == {job.id: "suspended"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "waiting"
    assert stored.processing_until is None and stored.total_tried == 0
    assert stored.wait_until == clock() + timedelta(seconds=DAY)
    clock.advance(DAY - 1)
    assert await _run(jobs) == {}
    clock.advance(1)
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.status == "completed" and done.output == {"slept": True}
    assert calls == Counter({"charge": 1, "after": 1})
    assert done.total_tried == 1


async def test_signal_sent_before_the_wait_and_in_order(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener")
    assert await jobs.signal(job.id, "go", {"n": 1})
    assert await jobs.signal(job.id, "go")
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"first": {"n": 1}, "second": {}}


async def test_wait_suspends_until_signalled(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener")
    assert await _run(jobs) == {job.id: "suspended"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "suspended" and stored.wait_until is None
    assert [j.id for j in await jobs.find(where={"status": "suspended"})] == [job.id]
    assert await jobs.find(where={"status": "waiting"}) == []
    assert await _run(jobs) == {}  # not claimable while suspended
    assert await jobs.signal(job.id, "other")  # another topic wakes it, it suspends again
    assert await _run(jobs) == {job.id: "suspended"}
    assert await jobs.signal(job.id, "go", {"n": 1})
    assert await _run(jobs) == {job.id: "suspended"}  # took the first, waits for the second
    assert await jobs.signal(job.id, "go", {"n": 2})
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"first": {"n": 1}, "second": {"n": 2}}
    assert done.total_tried == 1 and calls["after"] == 1
    assert not await jobs.signal(job.id, "go")  # finished
    assert not await jobs.signal(10**9, "go")  # unknown


async def test_timeout_returns_none(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener", input={"timeout": 60})
    assert await _run(jobs) == {job.id: "suspended"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "suspended" and stored.wait_until is not None
    clock.advance(60)
    assert await _run(jobs) == {job.id: "suspended"}  # the second wait starts its own timeout
    assert await jobs.signal(job.id, "go", {"late": True})
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"first": None, "second": {"late": True}}


async def test_except_exception_cannot_catch_the_suspension(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[swallower])
    job = await jobs.queue(workflow="swallower")
    assert await _run(jobs) == {job.id: "suspended"}
    assert calls["swallowed"] == 0


async def test_signal_checks_its_arguments(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener")
    with pytest.raises(ValueError, match="topic"):
        await jobs.signal(job.id, "")
    with pytest.raises(ValueError, match="kept for run_child"):
        await jobs.signal(job.id, "run_child:1")
    with pytest.raises(TypeError, match="payload"):
        await jobs.signal(job.id, "go", [1])  # type: ignore[arg-type]


async def test_run_child_returns_its_output(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[child_task], workflows=[parent], delete_job_on_complete=True)
    job = await jobs.queue(workflow="parent", input={"n": 21})
    assert await jobs.run() == asyncjobs.RunResult(job_status={job.id: "suspended"})
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert await _run(jobs) == {child.id: "success", job.id: "success"}
    assert await jobs.get(job.id) is None and await jobs.get(child.id) is None
    assert calls == Counter({"child": 1, "parent-done": 1})


async def test_run_child_output_kept_rows(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[child_task], workflows=[parent])
    job = await jobs.queue(workflow="parent", input={"n": 21})
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"child": {"doubled": 42}}
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert child.status == "completed" and child.queue == done.queue


async def test_child_failed_is_a_failed_step(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[child_task], workflows=[parent])
    job = await jobs.queue(workflow="parent", input={"n": 1, "fail": True})
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.status == "failed"
    assert done.error is not None and done.error["name"] == "ChildFailed"
    children = [j for j in await jobs.find() if j.parent_id == job.id]
    assert len(children) == 2  # the parent's retry queued a new child
    assert calls["child-failed"] == 2 and calls["child"] == 2


async def test_cancel_cascades_to_children(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[grandparent, child_flow])
    job = await jobs.queue(workflow="grandparent")
    await _run(jobs)
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert child.status == "suspended"
    assert await jobs.cancel_by_id(job.id)
    found = await jobs.get(child.id)
    assert found is not None and found.status == "cancelled"
    assert await _run(jobs) == {}


async def test_cancelled_child_fails_its_parent(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[grandparent, child_flow])
    job = await jobs.queue(workflow="grandparent")
    await _run(jobs)
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert await jobs.cancel_by_id(child.id)
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.status == "failed"
    assert done.error is not None and "was cancelled" in done.error["message"]


async def test_child_workflow_signalled(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[grandparent, child_flow])
    job = await jobs.queue(workflow="grandparent")
    await _run(jobs)
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert await jobs.signal(child.id, "release", {"ok": 1})
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"out": {"got": {"ok": 1}}}


async def test_restart_while_suspended(make_jobs: MakeJobs, clock: FakeClock) -> None:
    first = make_jobs(
        tasks=[charge, child_task], workflows=[napper, listener, parent, child_flow, grandparent]
    )
    napping = await first.queue(workflow="napper")
    waiting = await first.queue(workflow="listener")
    parenting = await first.queue(workflow="grandparent")
    await _run(first)
    await first.stop()
    second = make_jobs(
        tasks=[charge, child_task], workflows=[napper, listener, parent, child_flow, grandparent]
    )
    statuses = {j.id: j.status for j in await second.find()}
    assert statuses[napping.id] == "waiting" and statuses[waiting.id] == "suspended"
    assert statuses[parenting.id] == "suspended"
    (child,) = [j for j in await second.find() if j.parent_id == parenting.id]
    assert await second.signal(waiting.id, "go", {"n": 1})
    assert await second.signal(waiting.id, "go", {"n": 2})
    assert await second.signal(child.id, "release")
    clock.advance(DAY)
    await _run(second)
    done = {j.id: j for j in await second.find()}
    assert all(j.status == "completed" for j in done.values())
    assert calls == Counter({"charge": 1, "after": 2})


def _done(slug: str, step_id: str) -> Callable[[asyncjobs.Job], bool]:
    def condition(job: asyncjobs.Job) -> bool:
        status = job.task_status.get(slug, {}).get(step_id)
        return status is not None and status.complete

    return condition


async def test_json_steps_sleep_and_wait_for_signal(make_jobs: MakeJobs, clock: FakeClock) -> None:
    flow = asyncjobs.Workflow(
        slug="json-order",
        handler=[
            {"id": "pay", "task": "charge", "input": {"amount": 3}},
            {
                "id": "ship",
                "wait_for_signal": "shipped",
                "timeout": 3600,
                "condition": _done("charge", "pay"),
            },
            {"id": "nap", "sleep": DAY, "condition": _done("wait_for_signal", "ship")},
            {"id": "review", "task": "charge", "condition": _done("sleep", "nap")},
        ],
    )
    jobs = make_jobs(tasks=[charge], workflows=[flow])
    job = await jobs.queue(workflow="json-order")
    assert await _run(jobs) == {job.id: "suspended"}
    assert await jobs.signal(job.id, "shipped", {"tracking": "T1"})
    assert await _run(jobs) == {job.id: "suspended"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "waiting"
    clock.advance(DAY)
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and calls["charge"] == 2
    assert done.task_status["wait_for_signal"]["ship"].output["payload"] == {"tracking": "T1"}


@pytest.mark.parametrize(
    ("step", "message"),
    [
        ({"id": "a", "sleep": -1}, "0 or more"),
        ({"id": "a", "sleep": 1, "timeout": 2}, "only with 'wait_for_signal'"),
        ({"id": "a", "wait_for_signal": ""}, "topic"),
        ({"id": "a", "wait_for_signal": "t", "timeout": "x"}, "'timeout' must be"),
        ({"id": "a", "sleep": 1, "task": "charge"}, "exactly one of"),
    ],
)
def test_json_wait_steps_are_checked(step: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        asyncjobs.Workflow(slug="bad", handler=[step])


async def test_suspended_shows_in_the_cli_and_dashboard(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    from asyncjobs.cli.render import note as cli_note
    from asyncjobs.dashboard.present import note as dashboard_note

    jobs = make_jobs(workflows=[listener])
    forever = await jobs.queue(workflow="listener")
    timed = await jobs.queue(workflow="listener", input={"timeout": 60})
    await _run(jobs)
    shown = {job.id: job for job in await jobs.find(where={"status": "suspended"})}
    assert cli_note(shown[forever.id]) == "until a signal or its child"
    assert cli_note(shown[timed.id]).startswith("until a signal or its child, or ")
    rows = {job.id: await jobs.store.get(job.id) for job in shown.values()}
    assert dashboard_note(rows[forever.id], "suspended").text == "until woken"  # type: ignore[arg-type]
    assert dashboard_note(rows[timed.id], "suspended").at == clock() + timedelta(seconds=60)  # type: ignore[arg-type]
    metrics = {(c.queue, c.status): c.count for c in await queue_counts(jobs.store, clock())}
    assert metrics == {("default", "suspended"): 2}


async def test_sleep_checks_its_duration(make_jobs: MakeJobs) -> None:
    @asyncjobs.workflow("bad-sleep")
    async def bad_sleep(*, input: dict, sleep: Any) -> None:
        await sleep("s", input["for"])

    jobs = make_jobs(workflows=[bad_sleep])
    wrong = await jobs.queue(workflow="bad-sleep", input={"for": "soon"})
    negative = await jobs.queue(workflow="bad-sleep", input={"for": -1})
    await _run(jobs)
    failed = {job.id: job.error for job in await jobs.find(where={"status": "failed"})}
    assert failed[wrong.id] is not None and failed[wrong.id]["name"] == "TypeError"
    assert failed[negative.id] is not None and "negative" in failed[negative.id]["message"]


@asyncjobs.workflow("own-queue", queue="elsewhere")
async def own_queue(*, sleep: Any) -> dict:
    await sleep("s", timedelta(seconds=5))
    return {"own": True}


@asyncjobs.workflow("nested-parent")
async def nested_parent(*, run_child: Any) -> dict:
    return await run_child("c", workflow=own_queue)  # type: ignore[no-any-return]


async def test_a_child_workflow_keeps_its_own_queue(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = make_jobs(workflows=[own_queue, nested_parent])
    job = await jobs.queue(workflow="nested-parent", queue="mine")
    await _run(jobs)
    (child,) = [j for j in await jobs.find() if j.parent_id == job.id]
    assert child.queue == "elsewhere" and child.status == "waiting"
    clock.advance(5)
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"own": True}


@asyncjobs.workflow("fan-in")
async def fan_in(*, wait_for_signal: Any) -> dict:
    got: dict[str, Any] = {}

    async def one(topic: str) -> None:
        got[topic] = await wait_for_signal(topic, topic)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "left")
        tg.start_soon(one, "right")
    return got


async def test_waits_in_a_task_group(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(workflows=[fan_in])
    job = await jobs.queue(workflow="fan-in")
    assert await jobs.signal(job.id, "left", {"l": 1})
    assert await _run(jobs) == {job.id: "suspended"}
    assert await jobs.signal(job.id, "right", {"r": 1})
    assert await _run(jobs) == {job.id: "success"}
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"left": {"l": 1}, "right": {"r": 1}}


async def test_a_sleeper_run_early_sleeps_on_until_its_time(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[charge], workflows=[napper])
    job = await jobs.queue(workflow="napper")
    await _run(jobs)
    asleep = await jobs.get(job.id)
    assert asleep is not None
    assert await jobs.cancel_by_id(job.id) and await jobs.retry_by_id(job.id)
    assert await _run(jobs) == {job.id: "suspended"}  # retried at once, it sleeps on
    again = await jobs.get(job.id)
    assert again is not None and (again.status, again.wait_until) == ("waiting", asleep.wait_until)
    assert calls["charge"] == 1


async def test_a_timed_wait_woken_early_keeps_its_deadline(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener", input={"timeout": 60})
    await _run(jobs)
    clock.advance(30)
    assert await jobs.signal(job.id, "other")
    assert await _run(jobs) == {job.id: "suspended"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.wait_until == clock() + timedelta(seconds=30)


@asyncjobs.workflow("child-then-nap")
async def child_then_nap(*, run_child: Any, sleep: Any) -> dict:
    out = await run_child("c", task="child-task", input={"n": 2})
    await sleep("nap", 10)
    return {"out": out}


async def test_a_parent_woken_early_waits_on_and_restores_its_child(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[child_task], workflows=[child_then_nap])
    job = await jobs.queue(workflow="child-then-nap")
    assert await jobs.run() == asyncjobs.RunResult(job_status={job.id: "suspended"})
    assert await jobs.signal(job.id, "nudge")  # wakes it before the child ran
    assert await jobs.run(where={"id": job.id}) == asyncjobs.RunResult(
        job_status={job.id: "suspended"}
    )
    await _run(jobs)  # the child, then the parent until its sleep
    clock.advance(10)
    await _run(jobs)
    done = await jobs.get(job.id)
    assert done is not None and done.output == {"out": {"doubled": 4}}
    assert calls["child"] == 1


async def test_a_suspension_meets_a_signal_sent_meanwhile(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    from asyncjobs.models import FOREVER
    from asyncjobs.storage import Claim

    jobs = make_jobs(workflows=[listener])
    job = await jobs.queue(workflow="listener")
    now = clock()
    claim = Claim(
        limit=1, order="created_at", now=now, until=now + timedelta(seconds=60), token="t"
    )
    assert [row["id"] for row in await jobs.store.claim(claim)] == [job.id]
    assert await jobs.store.signal(job.id, "go", {"n": 1}, now=now) == ("default", None)
    values = {
        "processing_until": None,
        "processing_token": None,
        "wait_until": FOREVER,
        "suspended": True,
    }
    suspended = await jobs.store.suspend(
        job.id, "t", live_after=now, values=lambda _: values, check=("go", frozenset())
    )
    assert suspended == (False, None)
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "queued"
    lost = await jobs.store.suspend(job.id, "t", live_after=now, values=lambda _: values)
    assert lost is None  # the token no longer holds it


def test_the_cli_counts_suspended_jobs() -> None:
    from asyncjobs.cli.worker import _run_summary

    result = asyncjobs.RunResult(job_status={1: "suspended", 2: "success"})
    assert _run_summary(result, "queue 'default'") == (
        "Ran 2 jobs on queue 'default': 1 succeeded, 1 suspended."
    )
