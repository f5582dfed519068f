"""Every error of the command line, run as a real process: one line, non-zero, no traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import anyio
import pytest

from asyncjobs.cli.errors import describe
from tests.test_cli import BROKEN_MODULE, MISSING_ATTR, NOT_JOBS, Cli, make_cli
from tests.test_cli_queue import SCHEMA_APP

pytestmark = pytest.mark.slow

UNREACHABLE = "postgresql+asyncpg://postgres:secret@127.0.0.1:1/x"
APP = ("--app", "cliapp")

# (arguments, exit status, part of the message); {url} and {id} name a finished job's database.
CASES: list[tuple[tuple[str, ...], int, str]] = [
    (("run", "--app", "missing_module:jobs"), 1, "cannot import app module 'missing_module'"),
    (("run", "--app", "notjobs:jobs"), 1, "is a str, not an asyncjobs.Jobs object"),
    (("run", "--app", "brokenapp:jobs"), 1, "RuntimeError: config missing"),
    (("run", "--app", "missing_attr:nothing"), 1, "has no attribute 'nothing'"),
    (("run", "--app", "bad spec"), 1, "--app must look like module:attr"),
    (("run",), 1, "needs the app that defines your tasks"),
    (("run", *APP, "--cron", "61 * * * *"), 2, "invalid cron expression '61 * * * *'"),
    (("run", *APP, "--limit", "0"), 2, "expected a positive whole number, got '0'"),
    (("run", *APP, "--stop-timeout", "-1"), 2, "number of seconds >= 0"),
    (("run", *APP, "--queue", ""), 2, "queue must be a non-empty string"),
    (("handle-schedules", *APP, "--queue", ""), 2, "queue must be a non-empty string"),
    (("handle-schedules", "--app", "schemaapp"), 1, "1 schedule errored: report on 'default'"),
    (("run", "--handle-schedules", "--app", "schemaapp"), 1, "1 schedule errored"),
    (("jobs", "show", "999", *APP), 1, "no job with id 999"),
    (("jobs", "list", *APP, "--queue", ""), 2, "queue must be a non-empty string"),
    (("jobs", "list", "--database-url", UNREACHABLE), 1, "cannot open the database"),
    (("jobs", "list", "--database-url", "sqlite+aiosqlite:///nowhere/x.db"), 1, "nowhere/x.db"),
    (("jobs", "list", "--database-url", "foo"), 1, "unsupported database_url 'foo'"),
    (("jobs", "list", "--database-url", "mysql://u:pw@db/x"), 1, "mysql://u:***@db/x"),
    (("jobs", "list", "--app", "x:jobs", "--database-url", "{url}"), 1, "not both"),
    (("jobs", "list"), 1, "no database: pass --app"),
    (("jobs", "cancel", "{id}", "--database-url", "{url}"), 1, "is already completed"),
    (("jobs", "retry", "{id}", "--database-url", "{url}"), 1, "only failed or cancelled"),
    (("jobs", "queue", "hello", *APP, "--input", "{bad"), 2, "--input is not JSON"),
    (("jobs", "queue", "hello", *APP, "--input", "[1]"), 1, "must be a dict, got list"),
    (("jobs", "queue", "nosuch", *APP), 1, "no task or workflow 'nosuch'"),
    (("jobs", "queue", "hello", *APP, "--wait-until", "soon"), 2, "not an ISO 8601 time"),
    (
        ("jobs", "queue", "hello", *APP, "--wait-until", "2026-01-01T00:00:00"),
        2,
        "needs a UTC offset",
    ),
    (("jobs", "queue", "hello", *APP, "--queue", ""), 2, "queue must be a non-empty string"),
    (("jobs", "queue", "hello"), 1, "needs the app that defines your tasks"),
    (("jobs", "queue", "hello", "--database-url", "{url}"), 1, "needs --app"),
    (("jobs", "queue", "send-email", "--app", "schemaapp"), 1, "to: Field required"),
    (("exec", "nomain.py", "--app", "missing_attr"), 1, "async def main(jobs)"),
    (("exec", "nowhere.py", "--app", "missing_attr"), 1, "no such script: nowhere.py"),
    (("exec", "raises.py", "--app", "missing_attr"), 1, "ValueError: at import"),
    (("exec", "fails.py", *APP), 1, "ValueError: in main"),
    (("frobnicate",), 2, "invalid choice: 'frobnicate'"),
    (("demo", "--port", "70000"), 2, "expected a port number"),
]

FAILING_MAIN = "async def main(jobs):\n    raise ValueError('in main')\n"


async def _finished_job(cli: Cli) -> int:
    job = await cli.jobs.queue(task="hello")
    await cli.jobs.run()
    return job.id


def _problems(
    args: tuple[str, ...], code: int, message: str, result: subprocess.CompletedProcess[str]
) -> list[str]:
    found = []
    if result.returncode != code:
        found.append(f"exit {result.returncode}, expected {code}")
    if "Traceback" in result.stderr:
        found.append("a traceback")
    last = result.stderr.splitlines()[-1] if result.stderr else ""
    if not last.startswith("asyncjobs: error: ") or message not in last:
        found.append(f"last line {last!r} does not say {message!r}")
    if code == 2 and result.stderr.count("\n") != 1:
        found.append("more than one line")
    return [f"{' '.join(args)}: {problem}" for problem in found]


@pytest.mark.timeout(300)
async def test_every_error_is_one_line_with_a_non_zero_exit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = await make_cli(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", monkeypatch)
    files = {
        "notjobs.py": NOT_JOBS,
        "brokenapp.py": BROKEN_MODULE,
        "missing_attr.py": MISSING_ATTR,
        "schemaapp.py": SCHEMA_APP,
        "nomain.py": "x = 1\n",
        "raises.py": "raise ValueError('at import')\n",
        "fails.py": FAILING_MAIN,
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    job_id = await _finished_job(cli)
    await cli.jobs.stop()
    cli.env.pop("ASYNCJOBS_DATABASE_URL", None)
    problems: list[str] = []
    limiter = anyio.CapacityLimiter(4)

    async def check(args: tuple[str, ...], code: int, message: str) -> None:
        argv = [arg.replace("{url}", cli.url).replace("{id}", str(job_id)) for arg in args]
        async with limiter:
            result = await cli(*argv)
        problems.extend(_problems(args, code, message, result))

    async with anyio.create_task_group() as tg:
        for args, code, message in CASES:
            tg.start_soon(check, args, code, message)
    assert problems == []
    assert not (tmp_path / "nowhere").exists()


def test_an_error_is_described_on_one_line_even_inside_a_group() -> None:
    group = ExceptionGroup("in a task group", [ValueError("bad\n  value")])
    assert describe(group) == "ValueError: bad value"
    assert describe(KeyError()) == "KeyError"
