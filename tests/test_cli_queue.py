"""``asyncjobs jobs queue``, and command-line fixes: exit codes, grammar, closed pipes."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from tests.test_cli import Cli, make_cli

pytestmark = pytest.mark.slow

SCHEMA_APP = '''
"""An app with a validated task and a schedule whose hook fails."""

import os

from pydantic import BaseModel

import asyncjobs


class EmailIn(BaseModel):
    to: str


@asyncjobs.task("send-email", input_schema=EmailIn)
async def send_email(*, input):
    return {"sent": input.to}


def refuse(**_):
    raise RuntimeError("the report hook broke")


@asyncjobs.task("report", schedule=asyncjobs.Schedule("* * * * *", before_schedule=refuse))
async def report():
    return None


jobs = asyncjobs.Jobs(
    tasks=[send_email, report],
    database_url=os.environ["CLI_TEST_DATABASE_URL"],
    auto_run=[],
    delete_job_on_complete=False,
)
'''


@pytest.fixture
async def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cli]:
    (tmp_path / "schemaapp.py").write_text(SCHEMA_APP)
    made = await make_cli(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", monkeypatch)
    yield made
    await made.jobs.stop()


async def test_jobs_queue_stores_a_validated_job_and_prints_it(cli: Cli) -> None:
    text = await cli.ok("jobs", "queue", "hello", "--input", '{"name": "Ada"}', "--app", "cliapp")
    printed = await cli.json("jobs", "queue", "two-steps", "--queue", "flows", "--app", "cliapp")
    first, second = await cli.jobs.find(order="id")
    assert text == f"Queued job {first.id}: task hello on queue 'default'.\n"
    assert (first.task_slug, first.input, first.status) == ("hello", {"name": "Ada"}, "queued")
    assert printed["id"] == second.id
    assert (printed["workflow_slug"], printed["queue"]) == ("two-steps", "flows")
    assert (await cli.ok("run", "--app", "cliapp")).startswith("Ran 1 job")


async def test_jobs_queue_takes_a_wait_until_with_an_offset(cli: Cli) -> None:
    text = await cli.ok(
        "jobs", "queue", "hello", "--wait-until", "2099-05-01T05:00:00+02:00", "--app", "cliapp"
    )
    (job,) = await cli.jobs.find()
    assert job.wait_until == datetime(2099, 5, 1, 3, 0, tzinfo=UTC)
    later = "runs after 2099-05-01 03:00:00 UTC"
    assert text == f"Queued job {job.id}: task hello on queue 'default', {later}.\n"


async def test_jobs_queue_validates_input_like_queue(cli: Cli) -> None:
    refused = await cli("jobs", "queue", "send-email", "--input", "{}", "--app", "schemaapp")
    accepted = await cli.json(
        "jobs", "queue", "send-email", "--input", '{"to": "ada@example.com"}', "--app", "schemaapp"
    )
    assert refused.returncode == 1
    assert refused.stderr == (
        "asyncjobs: error: invalid input for task 'send-email': to: Field required\n"
    )
    assert accepted["input"] == {"to": "ada@example.com"}
    assert len(await cli.jobs.find()) == 1


async def test_handle_schedules_exits_non_zero_when_a_schedule_errored(cli: Cli) -> None:
    result = await cli("handle-schedules", "--app", "schemaapp")
    assert result.returncode == 1
    assert result.stdout == "Schedules: 0 queued; 0 skipped; 1 errored (report on 'default').\n"
    *logged, last = result.stderr.splitlines()
    assert last == "asyncjobs: error: 1 schedule errored: report on 'default' (see the log above)"
    assert any("RuntimeError: the report hook broke" in line for line in logged)
    assert "Traceback" not in result.stderr


async def test_run_handling_schedules_exits_non_zero_when_a_schedule_errored(cli: Cli) -> None:
    result = await cli("run", "--handle-schedules", "--app", "schemaapp")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1] == "No jobs to run on queue 'default'."
    assert result.stderr.splitlines()[-1].startswith("asyncjobs: error: 1 schedule errored")


async def test_one_job_is_one_job_in_the_log(cli: Cli) -> None:
    await cli.jobs.queue(task="hello")
    result = await cli("run", "--app", "cliapp")
    assert "Running 1 job.\n" in result.stderr
    assert result.stdout == "Ran 1 job on queue 'default': 1 succeeded.\n"


def _first_line_then_close(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Like ``cmd | head -1``: read one line, then close the pipe while output still comes."""
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    with subprocess.Popen(argv, cwd=cwd, env=env, **pipes) as proc:  # type: ignore[call-overload]
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()
        stderr = proc.stderr.read().decode()
        return proc.wait(timeout=30), stderr


@pytest.mark.parametrize("json_flag", [["--json"], []])
async def test_a_reader_that_stops_early_ends_the_command_quietly(
    cli: Cli, json_flag: list[str]
) -> None:
    # Far more output than a pipe buffers (3,000 rows), so writing goes on after the reader left.
    await cli.jobs.queue_many([{"task": "hello", "input": {"pad": "x" * 100}}] * 3000)
    argv = cli.argv(["jobs", "list", "--limit", "3000", "--app", "cliapp", *json_flag])
    code, stderr = await anyio.to_thread.run_sync(_first_line_then_close, argv, cli.cwd, cli.env)
    assert stderr == ""
    assert code == 141  # 128 + SIGPIPE, as other command-line tools end
