"""autoRun slots: a slow job holds one slot, each ended job's slot is refilled, and writes of
several jobs grouped into one statement stay fenced by each job's own lease token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import asyncjobs
from asyncjobs import finisher, step_writes
from asyncjobs.slots import REFILL_DELAY, Slots
from asyncjobs.storage.common import SqlStore
from tests.conftest import FakeClock
from tests.test_autorun import YEARLY, until
from tests.test_backends import NOW, a_row, claim, store  # noqa: F401  (the store fixture)

MakeJobs = Callable[..., asyncjobs.Jobs]


class Gated:
    """A task whose jobs each wait for their own gate; notes which started and which ended."""

    def __init__(self) -> None:
        self.gates: dict[int, anyio.Event] = {}
        self.started: list[int] = []
        self.ended: list[int] = []
        self.running = 0
        self.most = 0
        self.task = asyncjobs.Task("gated", self.handle)

    def gate(self, n: int) -> anyio.Event:
        return self.gates.setdefault(n, anyio.Event())

    async def handle(self, *, input: dict[str, Any]) -> None:
        n = input["n"]
        self.started.append(n)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if input.get("wait", True):
                await self.gate(n).wait()
        finally:
            self.running -= 1
        self.ended.append(n)


def entry(limit: int) -> list[asyncjobs.AutoRun]:
    return [asyncjobs.AutoRun(cron=YEARLY, limit=limit)]


async def queue_gated(jobs: asyncjobs.Jobs, count: int, **input: Any) -> list[int]:
    return [(await jobs.queue(task="gated", input={"n": n, **input})).id for n in range(count)]


async def test_a_slow_job_holds_one_slot_while_the_others_keep_running(
    make_jobs: MakeJobs,
) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(2))
    await jobs.queue(task="gated", input={"n": 0})  # the slow one: its gate stays shut
    for n in range(1, 6):
        await jobs.queue(task="gated", input={"n": n, "wait": False})
    await jobs.start()
    await until(lambda: len(gated.ended) == 5)
    assert gated.started[0] == 0 and 0 not in gated.ended
    gated.gate(0).set()
    await until(lambda: len(gated.ended) == 6)
    await jobs.stop()
    assert {job.status for job in await jobs.find()} == {"completed"}


async def test_each_ended_job_frees_its_slot_for_the_next(make_jobs: MakeJobs) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(2))
    await queue_gated(jobs, 4)
    await jobs.start()
    await until(lambda: gated.started == [0, 1])
    gated.gate(1).set()
    await until(lambda: gated.started == [0, 1, 2])
    gated.gate(2).set()
    await until(lambda: gated.started == [0, 1, 2, 3])
    assert gated.ended == [1, 2] and gated.most == 2
    gated.gate(0).set()
    gated.gate(3).set()
    await until(lambda: len(gated.ended) == 4)


async def test_never_more_than_limit_jobs_are_in_flight(make_jobs: MakeJobs) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(3))
    await queue_gated(jobs, 10)
    await jobs.start()
    await until(lambda: gated.running == 3)
    leased = [job for job in await jobs.find() if job.processing_until is not None]
    assert len(leased) == 3  # nothing claimed beyond the free slots
    for n in range(10):
        gated.gate(n).set()
        await anyio.lowlevel.checkpoint()
    await until(lambda: len(gated.ended) == 10)
    assert gated.most == 3


def test_a_freed_slot_asks_for_a_claim_at_once_only_when_half_are_free() -> None:
    asks: list[float] = []
    slots = Slots(4, on_free=asks.append)
    slots.claimed(4, 4)
    slots.release()  # 1 of 4 free: ask later, to claim for more at once
    slots.release()  # 2 of 4: at once
    slots.release()  # no second delayed ask before the next claim
    assert asks == [REFILL_DELAY, 0.0, 0.0]
    slots.claimed(3, 3)
    slots.release()
    slots.release()
    assert asks[3:] == [REFILL_DELAY, 0.0]
    slots.claimed(2, 1)  # fewer than asked: nothing waits, a freed slot asks for nothing
    slots.release()
    assert len(asks) == 5


def test_a_freed_slot_asks_at_once_when_no_job_runs() -> None:
    asks: list[float] = []
    slots = Slots(3, on_free=asks.append)
    slots.claimed(1, 1)  # a full claim of the last free slot
    slots.release()
    assert asks == [0.0] and slots.busy == 0


async def until_completed(jobs: asyncjobs.Jobs, job_id: int) -> None:
    with anyio.fail_after(6):
        while (job := await jobs.get(job_id)) is None or job.status != "completed":
            await anyio.sleep(0.02)


async def test_refills_wait_for_half_the_slots_or_the_refill_delay(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(4))
    ids = await queue_gated(jobs, 8)
    await jobs.start()
    await until(lambda: gated.started == [0, 1, 2, 3])
    gated.gate(0).set()
    await until_completed(jobs, ids[0])
    assert gated.started == [0, 1, 2, 3]  # one free slot of four: no claim yet
    gated.gate(1).set()  # two free: one claim fills both
    await until(lambda: gated.started == [0, 1, 2, 3, 4, 5])
    gated.gate(2).set()
    await until_completed(jobs, ids[2])
    assert len(gated.started) == 6
    clock.advance(REFILL_DELAY)  # the delayed ask comes due
    await until(lambda: len(gated.started) == 7)
    for n in range(8):
        gated.gate(n).set()
    await until(lambda: len(gated.ended) == 8)
    assert gated.most == 4


async def test_stop_hands_back_the_jobs_of_every_slot(make_jobs: MakeJobs) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(3))
    ids = await queue_gated(jobs, 2)
    await jobs.start()
    await until(lambda: len(gated.started) == 2)
    ids += await queue_gated(jobs, 1)  # a wake: a second claim for the third slot
    await until(lambda: len(gated.started) == 3)
    await jobs.stop(timeout=0.1)
    for job_id in ids:
        job = await jobs.get(job_id)
        assert job is not None and job.processing_until is None
        assert (job.status, job.total_tried) == ("queued", 0)


async def test_two_claims_of_one_entry_never_overlap(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(2))
    claiming = most = claims = 0
    original = jobs.store.claim

    async def counted(request: Any) -> Any:
        nonlocal claiming, most, claims
        claiming += 1
        claims += 1
        most = max(most, claiming)
        try:
            for _ in range(5):  # give any other claim every chance to start meanwhile
                await anyio.lowlevel.checkpoint()
            return await original(request)
        finally:
            claiming -= 1

    monkeypatch.setattr(jobs.store, "claim", counted)
    await jobs.start()
    for n in range(12):  # each queue() wakes the entry, and each ended job frees a slot
        await jobs.queue(task="gated", input={"n": n, "wait": False})
    await until(lambda: len(gated.ended) == 12)
    assert most == 1 and claims > 1


async def test_a_lost_lease_job_in_a_grouped_completion_is_not_written(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    gated = Gated()
    jobs = make_jobs(tasks=[gated.task], auto_run=entry(2))
    lost, kept = await queue_gated(jobs, 2)
    writes: list[set[int]] = []
    original = jobs.store.finish_owned

    async def recorded(logs: Any, token: Any, **options: Any) -> set[int]:
        writes.append(set(logs))
        return await original(logs, token, **options)

    monkeypatch.setattr(jobs.store, "finish_owned", recorded)
    await jobs.start()
    await until(lambda: len(gated.started) == 2)
    await steal_lease(jobs, lost, clock)
    gated.gate(0).set()
    gated.gate(1).set()
    await until(lambda: len(gated.ended) == 2)
    await jobs.stop()
    assert writes == [{lost, kept}]  # one statement for both
    stolen, finished = await jobs.get(lost), await jobs.get(kept)
    assert stolen is not None and finished is not None
    assert (stolen.status, stolen.total_tried, finished.status) == ("processing", 0, "completed")


async def steal_lease(jobs: asyncjobs.Jobs, job_id: int, clock: FakeClock) -> None:
    """What another worker claiming the job after its lease ran out leaves behind."""
    row = await jobs.store.get(job_id)
    assert row is not None
    taken = await jobs.store.update_owned(
        job_id, row["processing_token"], live_after=clock.now, values={"processing_token": "x"}
    )
    assert taken


@asyncjobs.task("step")
async def step(*, input: dict[str, Any]) -> dict[str, Any]:
    return {"n": input["n"]}


gates: dict[int, anyio.Event] = {}


@asyncjobs.workflow("two-steps")
async def two_steps(*, input: dict[str, Any], tasks: Any) -> None:
    await gates[input["n"]].wait()
    await tasks.step("1", input=input)
    await tasks.step("2", input=input)


async def test_a_lost_lease_job_in_a_grouped_step_write_stops_and_writes_nothing(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch, clock: FakeClock
) -> None:
    gates.clear()
    gates.update({0: anyio.Event(), 1: anyio.Event()})
    jobs = make_jobs(tasks=[step], workflows=[two_steps])
    lost, kept = [(await jobs.queue(workflow="two-steps", input={"n": n})).id for n in range(2)]
    writes: list[set[int]] = []
    original = jobs.store.write_logs

    async def recorded(logs: Any, tokens: Any, **options: Any) -> set[int]:
        writes.append(set(logs))
        return await original(logs, tokens, **options)

    monkeypatch.setattr(jobs.store, "write_logs", recorded)
    async with anyio.create_task_group() as tg:
        results: list[asyncjobs.RunResult] = []

        async def run() -> None:
            results.append(await jobs.run(limit=2))

        tg.start_soon(run)
        await until(lambda: jobs.runner.running.keys() == {lost, kept})
        await steal_lease(jobs, lost, clock)
        gates[0].set()
        gates[1].set()
    assert writes[0] == {lost, kept}  # the first steps of both, in one statement
    assert writes[1:] == [{kept}]  # the job that lost its lease stopped there
    assert results[0].job_status == {kept: "success"}
    stolen, finished = await jobs.get(lost), await jobs.get(kept)
    assert stolen is not None and finished is not None
    assert (stolen.status, stolen.log, finished.status) == ("processing", [], "completed")
    assert [entry.task_id for entry in finished.log] == ["1", "2"]


async def test_grouped_writes_check_each_jobs_own_token(store: SqlStore) -> None:  # noqa: F811
    rows = await store.insert_jobs([a_row(1), a_row(2)], supersede=[], now=NOW)
    first, second = (row["id"] for row in rows)
    await store.claim(claim("t1", limit=1))
    await store.claim(claim("t2", limit=1))
    later = claim("t1").now + timedelta(minutes=1)
    entry = {"id": "e", "task_slug": "noop", "task_id": "1", "output": None}
    tokens = {first: "t1", second: "wrong"}
    written = await store.write_logs(
        {first: [entry], second: [entry]}, tokens, live_after=later, now=later
    )
    assert written == {first}
    tokens[second] = "t2"
    done = await store.finish_owned(
        {first: None, second: None}, tokens, live_after=later, now=later, delete=False
    )
    assert done == {first, second}
    one, two = await store.get(first), await store.get(second)
    assert one is not None and two is not None
    assert (one["log"], two["log"]) == ([entry], None)


def test_a_job_claimed_twice_is_written_once_per_statement() -> None:
    """Two attempts of one job (re-claimed after its lease ran out) never share a write."""
    first, again, other = (SimpleNamespace(id=n) for n in (1, 1, 2))
    assert finisher._one_per_job([first, again, other]) == ([first, other], [again])  # type: ignore[list-item]
    pending = [step_writes._Pending(attempt, []) for attempt in (first, again, other)]  # type: ignore[arg-type]
    assert step_writes._one_per_job(pending) == ([pending[0], pending[2]], [pending[1]])


async def test_slots_start_jobs_only_while_running() -> None:
    slots = Slots(1)

    async def job() -> None:
        pass

    with pytest.raises(RuntimeError, match="not running"):
        slots.start(job)
