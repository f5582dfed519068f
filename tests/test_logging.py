"""Log lines: named loggers per area, the exception class, the job's fields, no stray stderr."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import asyncjobs
from tests.conftest import FakeClock

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("lookup", retries=1)
async def lookup(*, input: dict) -> None:
    raise KeyError("path")


async def test_a_failure_line_names_the_exception_and_carries_the_job(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    jobs = make_jobs(tasks=[lookup])
    job = await jobs.queue(task="lookup", queue="logged")
    with caplog.at_level(logging.INFO, logger="asyncjobs"):
        await jobs.run(queue="logged")
        clock.advance(3600)
        await jobs.run(queue="logged")
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in failures] == [
        f"Error running task 'lookup' (1) of job {job.id}, attempt {n}: KeyError: 'path' ({what})"
        for n, what in ((1, "will retry"), (2, "max retries reached"))
    ]
    about_the_job = [r for r in caplog.records if "job" in r.getMessage().lower()]
    assert about_the_job and all(r.name == "asyncjobs.runner" for r in about_the_job)
    for record in about_the_job:
        if "Running" in record.getMessage():
            continue  # the batch line, about several jobs
        fields = (record.job_id, record.slug, record.queue)  # type: ignore[attr-defined]
        assert fields == (job.id, "lookup", "logged")
        assert record.attempt in (1, 2)  # type: ignore[attr-defined]


def test_nothing_reaches_stderr_when_the_app_configures_no_logging(tmp_path: Path) -> None:
    script = f"""
import anyio, asyncjobs

@asyncjobs.task("lookup")
async def lookup(*, input): raise KeyError("path")

async def main():
    async with asyncjobs.Jobs(tasks=[lookup], database_url="sqlite+aiosqlite:///{tmp_path}/j.db",
                              auto_run=[]) as jobs:
        await jobs.queue(task="lookup")
        result = await jobs.run()
        assert list(result.job_status.values()) == ["error-reached-max-retries"], result

anyio.run(main)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50
    )
    assert (result.returncode, result.stderr) == (0, "")
