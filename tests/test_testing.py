"""asyncjobs.testing: a clock moved by hand, and running every queue until it is idle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import asyncjobs
from asyncjobs.testing import Clock, run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


# -- Clock -----------------------------------------------------------------------------------


def test_clock_starts_now_in_utc_by_default() -> None:
    before = datetime.now(UTC)
    clock = Clock()
    assert before <= clock() <= datetime.now(UTC)
    assert clock().tzinfo is UTC


def test_clock_stands_still_until_moved() -> None:
    clock = Clock(START)
    assert clock() == clock() == START
    assert clock.advance(90) == START + timedelta(seconds=90)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(hours=1, seconds=90)
    assert clock() == START + timedelta(hours=1, seconds=90)


def test_clock_set_jumps_to_a_moment_and_keeps_it_in_utc() -> None:
    clock = Clock(START)
    berlin_noon = datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    assert clock.set(berlin_noon) == datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    assert clock().tzinfo is UTC
    assert clock.set(START) == START  # tests may go back in time too


@pytest.mark.parametrize(
    "call",
    [
        lambda: Clock(datetime(2026, 1, 1)),
        lambda: Clock(START).set(datetime(2026, 1, 1)),
        lambda: Clock(START).advance(-1),
        lambda: Clock(START).advance(timedelta(seconds=-1)),
    ],
)
def test_clock_refuses_naive_moments_and_going_backwards_by_advance(call: Any) -> None:
    with pytest.raises(ValueError):
        call()


def test_clock_shows_its_moment() -> None:
    assert repr(Clock(START)) == "Clock(2026-03-01T09:00:00+00:00)"


def test_clock_refuses_what_is_not_a_moment_or_a_duration() -> None:
    with pytest.raises(TypeError):
        Clock(START).advance("1 minute")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Clock("2026-01-01")  # type: ignore[arg-type]


# -- run_until_idle --------------------------------------------------------------------------


async def test_runs_every_queue_and_returns_each_jobs_status(make_jobs: MakeJobs) -> None:
    async def ok() -> None:
        return None

    async def broken() -> None:
        raise RuntimeError("no")

    jobs = make_jobs(tasks=[asyncjobs.Task("ok", ok), asyncjobs.Task("broken", broken)])
    a = await jobs.queue(task="ok", queue="a")
    b = await jobs.queue(task="ok", queue="b")
    c = await jobs.queue(task="broken")
    assert await run_until_idle(jobs) == {
        a.id: "success",
        b.id: "success",
        c.id: "error-reached-max-retries",
    }


async def test_jobs_queued_by_running_jobs_run_too(make_jobs: MakeJobs) -> None:
    async def countdown(*, input: dict[str, int], jobs: asyncjobs.Jobs) -> None:
        if input["n"] > 0:
            await jobs.queue(task="countdown", input={"n": input["n"] - 1}, queue="next")

    jobs = make_jobs(tasks=[asyncjobs.Task("countdown", countdown)])
    await jobs.queue(task="countdown", input={"n": 3})
    statuses = await run_until_idle(jobs)
    assert list(statuses.values()) == ["success"] * 4


async def test_waiting_jobs_wait_unless_asked_to_advance(make_jobs: MakeJobs) -> None:
    ran: list[datetime] = []
    clock = Clock(START)

    async def note() -> None:
        ran.append(clock())

    jobs = make_jobs(tasks=[asyncjobs.Task("note", note)], clock=clock)
    later = await jobs.queue(task="note", wait_until=START + timedelta(hours=2))
    sooner = await jobs.queue(task="note", wait_until=START + timedelta(minutes=5))
    assert await run_until_idle(jobs) == {}
    assert await run_until_idle(jobs, advance=True) == {sooner.id: "success", later.id: "success"}
    assert ran == [START + timedelta(minutes=5), START + timedelta(hours=2)]
    assert clock() == START + timedelta(hours=2)


async def test_advance_walks_through_retry_backoff(make_jobs: MakeJobs) -> None:
    tries: list[datetime] = []
    clock = Clock(START)

    async def flaky() -> dict[str, bool]:
        tries.append(clock())
        if len(tries) < 3:
            raise ConnectionError("down")
        return {"ok": True}

    retries = asyncjobs.Retries(attempts=3, backoff=asyncjobs.Backoff(delay=60))
    jobs = make_jobs(tasks=[asyncjobs.Task("flaky", flaky, retries=retries)], clock=clock)
    job = await jobs.queue(task="flaky")
    assert await run_until_idle(jobs, advance=True) == {job.id: "success"}
    assert tries == [START, START + timedelta(seconds=60), START + timedelta(seconds=120)]


async def test_advance_needs_a_testing_clock(make_jobs: MakeJobs) -> None:
    jobs = make_jobs()  # the suite's own clock is not asyncjobs.testing.Clock
    with pytest.raises(TypeError, match=r"asyncjobs\.testing\.Clock"):
        await run_until_idle(jobs, advance=True)


async def test_max_jobs_stops_a_queue_that_never_empties(make_jobs: MakeJobs) -> None:
    async def again(*, jobs: asyncjobs.Jobs) -> None:
        await jobs.queue(task="again")

    jobs = make_jobs(tasks=[asyncjobs.Task("again", again)])
    await jobs.queue(task="again")
    with pytest.raises(RuntimeError, match="still not idle after 5 jobs"):
        await run_until_idle(jobs, max_jobs=5)


@pytest.mark.parametrize("max_jobs", [0, -1, 1.5, True])
async def test_max_jobs_must_be_a_positive_int(make_jobs: MakeJobs, max_jobs: Any) -> None:
    with pytest.raises(ValueError, match="max_jobs"):
        await run_until_idle(make_jobs(), max_jobs=max_jobs)


def test_the_kit_is_reachable_from_the_package() -> None:
    assert asyncjobs.testing.Clock is Clock
    assert "testing" in asyncjobs.__all__
