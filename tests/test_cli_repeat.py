"""The command line's repeat loop, in-process: cron ticks, failures between runs, no overlap."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import pytest

import asyncjobs
from asyncjobs.cli.repeat import Repeater
from asyncjobs.cron import parse
from asyncjobs.errors import StorageError
from tests.conftest import FakeClock

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])  # no storage behaviour here
MakeJobs = Callable[..., asyncjobs.Jobs]
EVERY_SECOND = parse("* * * * * *")


async def test_a_single_run_raises_its_own_error_not_a_group(make_jobs: MakeJobs) -> None:
    async def fail() -> None:
        raise StorageError("database went away")

    with pytest.raises(StorageError, match="database went away"):
        await Repeater(make_jobs(), fail, cron=None, stop_timeout=0).run()


async def test_a_failing_cron_run_is_logged_and_the_next_tick_still_runs(
    make_jobs: MakeJobs, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    # Just before a whole second, so each wait for the next tick is a millisecond of real time.
    clock.advance(-0.001)
    jobs = make_jobs()
    ticks: list[str] = []
    failures = [StorageError("database\n went away"), RuntimeError("bug in the script"), None]

    async def operation() -> None:
        ticks.append(clock().isoformat())
        clock.advance(1)
        failure = failures[len(ticks) - 1]
        if failure is not None:
            raise failure
        repeater.stopping.set()

    repeater = Repeater(jobs, operation, cron=EVERY_SECOND, stop_timeout=0)
    with caplog.at_level(logging.INFO, logger="asyncjobs.cli"):
        await repeater.run()

    assert len(ticks) == 3
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("ERROR", "This run failed: database went away") in messages
    assert ("ERROR", "This run failed; the next one runs on schedule") in messages
    assert messages[-1] == ("INFO", "Stopped.")


async def test_an_early_wake_up_does_not_run_the_same_tick_twice(
    make_jobs: MakeJobs, clock: FakeClock
) -> None:
    clock.advance(-0.001)
    jobs = make_jobs()
    started: list[float] = []

    async def operation() -> None:
        # The clock barely moves, as if the timer had woken just before the tick.
        started.append(time.monotonic())
        if len(started) == 2:
            repeater.stopping.set()
        clock.advance(0.0001)

    repeater = Repeater(jobs, operation, cron=EVERY_SECOND, stop_timeout=0)
    await repeater.run()

    assert started[1] - started[0] > 0.9  # the next run waited for the next tick
