"""The ``asyncjobs`` command line, run as a real subprocess against real databases."""

from __future__ import annotations

import importlib.util
import json
import os
import pty
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import pytest

import asyncjobs
from asyncjobs.cli import main as cli_main
from tests.conftest import run_until_idle

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
URL_ENV = "CLI_TEST_DATABASE_URL"
JOB_COLUMNS = ["ID", "STATUS", "TASK/WORKFLOW", "QUEUE", "TRIES", "CREATED", "(UTC)"]

APP_SOURCE = '''
"""The app a CLI test names with --app: a task, a two-step workflow, a scheduled task."""

import os
from pathlib import Path

import anyio

import asyncjobs


@asyncjobs.task("hello", retries=1)
async def hello(*, input):
    await anyio.sleep(input.get("sleep", 0))
    broken = input.get("broken")
    if broken and Path(broken).exists():
        raise RuntimeError("the mail server is down")
    return {"greeting": "hi " + input.get("name", "you")}


@asyncjobs.workflow("two-steps")
async def two_steps(*, input, tasks):
    await tasks["hello"]("first", input={"name": "first"})
    await tasks["hello"]("second", input={"name": "second", "broken": input.get("broken")})


@asyncjobs.task("tick", schedule=asyncjobs.Schedule("* * * * * *", queue="ticks"))
async def tick():
    return {}


jobs = asyncjobs.Jobs(
    tasks=[hello, tick],
    workflows=[two_steps],
    database_url=os.environ["CLI_TEST_DATABASE_URL"],
    auto_run=[],
    delete_job_on_complete=False,
)
'''


class Cli:
    """Runs ``python -m asyncjobs`` in a directory holding ``cliapp.py``; seeds in-process."""

    def __init__(self, cwd: Path, url: str, jobs: asyncjobs.Jobs) -> None:
        self.cwd, self.url, self.jobs = cwd, url, jobs
        self.env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), URL_ENV: url}
        self.env.pop("ASYNCJOBS_APP", None)

    def argv(self, args: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "asyncjobs", *args]

    async def __call__(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        result = await anyio.run_process(
            self.argv(args), cwd=self.cwd, env={**self.env, **env}, check=False
        )
        return subprocess.CompletedProcess(
            result.args, result.returncode, result.stdout.decode(), result.stderr.decode()
        )

    async def ok(self, *args: str) -> str:
        result = await self(*args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    async def json(self, *args: str) -> Any:
        return json.loads(await self.ok(*args, "--json"))


def load_app(path: Path) -> asyncjobs.Jobs:
    spec = importlib.util.spec_from_file_location(f"cliapp_{id(path)}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    jobs: asyncjobs.Jobs = module.jobs
    return jobs


async def make_cli(tmp_path: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> Cli:
    app = tmp_path / "cliapp.py"
    app.write_text(APP_SOURCE)
    monkeypatch.setenv(URL_ENV, url)
    jobs = load_app(app)
    await jobs.start(auto_run=False)
    return Cli(tmp_path, url, jobs)


@pytest.fixture
async def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Cli]:
    made = await make_cli(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}", monkeypatch)
    yield made
    await made.jobs.stop()


async def wait_for(condition: Any, timeout: float = 15) -> None:
    with anyio.fail_after(timeout):
        while not await condition():
            await anyio.sleep(0.05)


# -- run ---------------------------------------------------------------------------------


async def test_run_runs_due_jobs_of_the_app_named_in_the_environment(cli: Cli) -> None:
    done = await cli.jobs.queue(task="hello", input={"name": "Ada"})
    broken = cli.cwd / "broken"
    broken.touch()
    failing = await cli.jobs.queue(workflow="two-steps", input={"broken": str(broken)})

    result = await cli("run", ASYNCJOBS_APP="cliapp:jobs")

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Ran 2 jobs on queue 'default': 1 succeeded, 1 will retry.\n"
    assert f"Job {done.id} (hello) finished: success" in result.stderr
    assert f"Job {failing.id} (two-steps) finished: error" in result.stderr
    assert (await cli.jobs.get(done.id)).status == "completed"  # type: ignore[union-attr]


async def test_run_takes_queue_limit_and_all_queues(cli: Cli) -> None:
    on_a = await cli.jobs.queue(task="hello", queue="a")
    on_b = [await cli.jobs.queue(task="hello", queue="b") for _ in range(2)]

    only_a = await cli.json("run", "--app", "cliapp", "--queue", "a")
    one_more = await cli.json("run", "--app", "cliapp", "--all-queues", "--limit", "1")

    assert only_a["job_status"] == {str(on_a.id): "success"}
    assert one_more["job_status"] == {str(on_b[0].id): "success"}
    assert (await cli.jobs.get(on_b[1].id)).status == "queued"  # type: ignore[union-attr]


def _run_on_a_terminal(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    main, child = pty.openpty()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=child)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    proc.communicate(timeout=30)
    return proc.wait(), seen.decode()


async def test_run_shows_a_live_count_on_a_terminal(cli: Cli) -> None:
    await cli.jobs.queue_many([{"task": "hello", "input": {"sleep": 0.1 * n}} for n in range(3)])

    code, terminal = await anyio.to_thread.run_sync(
        _run_on_a_terminal, cli.argv(["run", "--app", "cliapp"]), cli.cwd, cli.env
    )

    assert code == 0
    assert "\rRunning jobs: 1/3 done (1 succeeded)" in terminal.replace("\x1b[K", "")
    assert "Running jobs: 3/3 done (3 succeeded)" in terminal
    assert "finished: success" not in terminal  # counted, not logged line by line


# -- handle-schedules --------------------------------------------------------------------


async def test_handle_schedules_enqueues_the_due_tick_once(cli: Cli) -> None:
    first = await cli.json("handle-schedules", "--app", "cliapp", "--queue", "ticks")
    again = await cli("run", "--app", "cliapp", "--handle-schedules", "--all-queues")

    assert first == {"queued": [["tick", "ticks"]], "skipped": [], "errored": []}
    assert again.stdout.startswith("Schedules: 0 queued; 1 skipped (tick on 'ticks'); 0 errored.")
    (job,) = await cli.jobs.find(where={"task_slug": "tick"})
    assert job.meta == {"scheduled": True}


# -- exec --------------------------------------------------------------------------------

SCRIPT = """
async def main(jobs):
    job = await jobs.queue(task="hello", input={"name": "from a script"})
    result = await jobs.run_by_id(job.id)
    print("script ran job", job.id, result.job_status[job.id])
"""


async def test_exec_runs_the_script_with_the_app_open(cli: Cli) -> None:
    (cli.cwd / "scripts").mkdir()
    (cli.cwd / "scripts" / "once.py").write_text(SCRIPT)

    output = await cli.ok("exec", "scripts/once.py", "--app", "cliapp")

    assert output == "script ran job 1 success\n"
    assert (await cli.jobs.get(1)).status == "completed"  # type: ignore[union-attr]


CRON_SCRIPT = """
from pathlib import Path

async def main(jobs):
    with Path("runs.txt").open("a") as out:
        out.write("run\\n")
"""


async def test_exec_repeats_on_its_cron_until_sigint(cli: Cli) -> None:
    (cli.cwd / "every_second.py").write_text(CRON_SCRIPT)
    runs = cli.cwd / "runs.txt"
    argv = cli.argv(["exec", "every_second.py", "--app", "cliapp", "--cron", "* * * * * *"])
    async with await anyio.open_process(argv, cwd=cli.cwd, env=cli.env) as proc:

        async def two_runs() -> bool:
            return runs.exists() and runs.read_text().count("run") >= 2

        await wait_for(two_runs)
        proc.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await proc.wait()

    assert code == 0


# -- jobs list / show / cancel / retry ---------------------------------------------------


async def _failed_workflow(cli: Cli) -> tuple[asyncjobs.Job, Path]:
    broken = cli.cwd / "broken"
    broken.touch()
    job = await cli.jobs.queue(workflow="two-steps", input={"broken": str(broken)})
    await run_until_idle(cli.jobs)
    return job, broken


async def test_jobs_list_and_show_give_tables_json_and_a_step_timeline(cli: Cli) -> None:
    failed, broken = await _failed_workflow(cli)
    waiting = await cli.jobs.queue(task="hello", queue="later", wait_until=_in(3600))

    table, listed, text, shown = await _together(
        cli.ok("jobs", "list", "--app", "cliapp"),
        cli.json("jobs", "list", "--app", "cliapp", "--status", "failed"),
        cli.ok("jobs", "show", str(failed.id), "--app", "cliapp"),
        cli.json("jobs", "show", str(failed.id), "--app", "cliapp"),
    )

    header, first, second = table.splitlines()
    assert header.split() == [*JOB_COLUMNS, "NOTE"]
    assert first.split()[:5] == [str(waiting.id), "waiting", "hello", "later", "0"]
    assert second.split()[:5] == [str(failed.id), "failed", "two-steps", "default", "2"]
    assert second.endswith("RuntimeError: the mail server is down")
    assert [job["id"] for job in listed] == [failed.id]
    assert text.splitlines()[0] == f"Job {failed.id}  workflow two-steps  failed"
    assert f'input      {{"broken": "{broken}"}}' in text
    assert "error      RuntimeError: the mail server is down" in text
    steps = text.split("\nSteps\n")[1].split("\n\n")[0].splitlines()
    assert [line.split()[2:5] for line in steps] == [
        ["hello", "#first", "succeeded"],
        ["hello", "#second", "failed"],
        ["hello", "#second", "failed"],
    ]
    assert "\nTraceback\n" in text
    assert shown["status"] == "failed" and len(shown["log"]) == 3


async def test_jobs_retry_runs_a_failed_job_again_without_its_succeeded_steps(cli: Cli) -> None:
    failed, broken = await _failed_workflow(cli)
    broken.unlink()  # the outage is over

    retried = await cli.ok("jobs", "retry", str(failed.id), "--app", "cliapp")
    ran = await cli.ok("run", "--app", "cliapp")

    assert (
        retried == f"Job {failed.id} is queued again; its 1 succeeded step(s) will not run again.\n"
    )
    assert ran.startswith("Ran 1 job on queue 'default': 1 succeeded.")
    job = await cli.jobs.get(failed.id)
    assert job is not None and job.status == "completed"
    assert [(e.task_id, e.state) for e in job.log] == [
        ("first", "succeeded"),
        ("second", "failed"),
        ("second", "failed"),
        ("second", "succeeded"),
    ]


async def test_jobs_cancel_works_from_a_database_url_alone(cli: Cli) -> None:
    job = await cli.jobs.queue(task="hello", wait_until=_in(3600))

    cancelled = await cli.json("jobs", "cancel", str(job.id), "--database-url", cli.url)

    assert cancelled == {"id": job.id, "cancelled": True}
    assert (await cli.jobs.get(job.id)).status == "cancelled"  # type: ignore[union-attr]


async def test_jobs_signal_stores_a_signal_for_an_unfinished_job(cli: Cli) -> None:
    job = await cli.jobs.queue(task="hello", wait_until=_in(3600))
    url = ("--database-url", cli.url)

    sent = await cli.json("jobs", "signal", str(job.id), "go", "--payload", '{"a": 1}', *url)
    plain = await cli.ok("jobs", "signal", str(job.id), "go", *url)
    reserved = await cli("jobs", "signal", str(job.id), "run_child:1", *url)
    await cli.jobs.cancel_by_id(job.id)
    finished = await cli("jobs", "signal", str(job.id), "go", *url)
    not_a_dict = await cli("jobs", "signal", str(job.id), "go", "--payload", "[1]", *url)

    assert sent == {"id": job.id, "topic": "go", "signalled": True}
    assert plain == f"Sent signal 'go' to job {job.id}.\n"
    stored = await cli.jobs.store.signals(job.id, "go")
    assert [payload for _, payload in stored] == [{"a": 1}, None]
    assert finished.returncode != 0 and "only unfinished jobs take signals" in finished.stderr
    assert reserved.returncode != 0 and "kept for run_child" in reserved.stderr
    assert not_a_dict.returncode != 0 and "--payload must be a JSON object" in not_a_dict.stderr


# -- errors: one line on stderr, a non-zero exit, nothing changed ------------------------

NOT_JOBS = "import asyncjobs\njobs = 'not a Jobs'\n"
BROKEN_MODULE = "raise RuntimeError('config missing')\n"
MISSING_ATTR = "import asyncjobs\njobs = asyncjobs.Jobs(auto_run=[])\n"


async def test_errors_are_one_line_and_a_non_zero_exit(cli: Cli) -> None:
    (cli.cwd / "notjobs.py").write_text(NOT_JOBS)
    app = ("--app", "cliapp")
    unreachable = "postgresql+asyncpg://postgres:secret@127.0.0.1:1/x"
    cases: dict[tuple[str, ...], tuple[int, str]] = {
        ("run", "--app", "missing_module:jobs"): (1, "cannot import app module 'missing_module'"),
        ("run", "--app", "notjobs:jobs"): (1, "is a str, not an asyncjobs.Jobs object"),
        ("run", *app, "--cron", "61 * * * *"): (2, "invalid cron expression '61 * * * *'"),
        ("run", *app, "--limit", "0"): (2, "expected a positive whole number, got '0'"),
        ("jobs", "show", "999", *app): (1, "no job with id 999"),
        ("jobs", "list", "--database-url", unreachable): (
            1,
            "cannot open the database postgresql+asyncpg://postgres:***@127.0.0.1:1/x",
        ),
    }
    results = await _together(*(cli(*args) for args in cases))

    for (code, message), result in zip(cases.values(), results, strict=True):
        assert_one_line_error(result.returncode, result.stdout, result.stderr, code, message)


def assert_one_line_error(got: int, stdout: str, stderr: str, code: int, message: str) -> None:
    assert got == code, stderr
    assert stderr.startswith("asyncjobs: error: "), stderr
    assert message in stderr, stderr
    assert stderr.count("\n") == 1 and "Traceback" not in stderr, stderr
    assert stdout == ""


@pytest.fixture
def finished_job(tmp_path: Path) -> tuple[str, int]:
    """A database file holding one completed job, made through the command line itself."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'done.db'}"

    async def seed() -> int:
        jobs = asyncjobs.Jobs(
            tasks=[asyncjobs.Task("noop", _noop)],
            database_url=url,
            auto_run=[],
            delete_job_on_complete=False,
        )
        async with jobs.lifespan(auto_run=False):
            job = await jobs.queue(task="noop")
            await jobs.run()
            return job.id

    return url, anyio.run(seed)


async def _noop() -> None:
    pass


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "--app", "brokenapp:jobs"], 1, "RuntimeError: config missing"),
        (["run", "--app", "cliapp_missing_attr:nothing"], 1, "has no attribute 'nothing'"),
        (["run", "--app", "bad spec"], 1, "--app must look like module:attr"),
        (["run"], 1, "needs the app that defines your tasks"),
        (["jobs", "list", "--database-url", "sqlite+aiosqlite:///nowhere/x.db"], 1, "nowhere/x.db"),
        (["jobs", "cancel", "{id}", "--database-url", "{url}"], 1, "is already completed"),
        (["jobs", "retry", "{id}", "--database-url", "{url}"], 1, "only failed or cancelled"),
        (["jobs", "list", "--app", "x:jobs", "--database-url", "{url}"], 1, "not both"),
        (["jobs", "list"], 1, "no database: pass --app"),
        (["exec", "nomain.py", "--app", "cliapp_missing_attr"], 1, "async def main(jobs)"),
        (["exec", "nowhere.py", "--app", "cliapp_missing_attr"], 1, "no such script: nowhere.py"),
        (["exec", "raises.py", "--app", "cliapp_missing_attr"], 1, "ValueError: at import"),
        (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
        (["demo", "--port", "70000"], 2, "expected a port number"),
        (["run", "--app", "x", "--stop-timeout", "-1"], 2, "number of seconds >= 0"),
    ],
)
def test_more_errors_are_one_line_too(
    args: list[str],
    code: int,
    message: str,
    finished_job: tuple[str, int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, job_id = finished_job
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ASYNCJOBS_APP", raising=False)
    monkeypatch.delenv("ASYNCJOBS_DATABASE_URL", raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    (tmp_path / "brokenapp.py").write_text(BROKEN_MODULE)
    (tmp_path / "cliapp_missing_attr.py").write_text(MISSING_ATTR)
    (tmp_path / "nomain.py").write_text("x = 1\n")
    (tmp_path / "raises.py").write_text("raise ValueError('at import')\n")
    argv = [arg.format(id=job_id, url=url) for arg in args]

    got = cli_main(argv)

    out = capsys.readouterr()
    assert_one_line_error(got, out.out, out.err, code, message)
    assert not (tmp_path / "nowhere").exists()


# -- --cron and signals ------------------------------------------------------------------


async def test_cron_run_stopped_by_sigterm_hands_back_its_running_job(cli: Cli) -> None:
    job = await cli.jobs.queue(task="hello", input={"sleep": 60})
    argv = cli.argv(["run", *("--app", "cliapp", "--cron", "* * * * * *", "--stop-timeout", "0.2")])
    errors = cli.cwd / "stderr.txt"
    with errors.open("wb") as stderr:
        async with await anyio.open_process(argv, cwd=cli.cwd, env=cli.env, stderr=stderr) as proc:

            async def running() -> bool:
                found = await cli.jobs.get(job.id)
                return found is not None and found.status == "processing"

            await wait_for(running)
            proc.send_signal(signal.SIGTERM)
            with anyio.fail_after(10):
                code = await proc.wait()

    assert code == 0, errors.read_text()
    assert "SIGTERM received" in errors.read_text()
    released = await cli.jobs.get(job.id)
    assert released is not None
    assert (released.status, released.processing_until, released.total_tried) == ("queued", None, 0)


async def test_cron_run_lets_a_short_run_finish_after_sigterm(cli: Cli) -> None:
    job = await cli.jobs.queue(task="hello", input={"sleep": 1})
    argv = cli.argv(["run", "--app", "cliapp", "--cron", "* * * * * *"])
    async with await anyio.open_process(argv, cwd=cli.cwd, env=cli.env) as proc:

        async def running() -> bool:
            found = await cli.jobs.get(job.id)
            return found is not None and found.status != "queued"

        await wait_for(running)
        proc.send_signal(signal.SIGTERM)
        with anyio.fail_after(10):
            code = await proc.wait()

    assert code == 0
    assert (await cli.jobs.get(job.id)).status == "completed"  # type: ignore[union-attr]


# -- PostgreSQL --------------------------------------------------------------------------


@pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)])
async def test_run_and_list_on_postgresql(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = await make_cli(tmp_path, database_url, monkeypatch)
    try:
        job = await cli.jobs.queue(task="hello", input={"name": "pg"})
        ran = await cli.json("run", "--app", "cliapp")
        listed = await cli.json("jobs", "list", "--database-url", database_url)
    finally:
        await cli.jobs.stop()

    assert ran["job_status"] == {str(job.id): "success"}
    assert [(j["id"], j["status"], j["log"][0]["output"]) for j in listed] == [
        (job.id, "completed", {"greeting": "hi pg"})
    ]


# -- helpers -----------------------------------------------------------------------------


async def _together(*calls: Any) -> list[Any]:
    """Await several subprocess runs at once (each one spends most of its time importing)."""
    results: list[Any] = [None] * len(calls)

    async def one(index: int, call: Any) -> None:
        results[index] = await call

    async with anyio.create_task_group() as tg:
        for index, call in enumerate(calls):
            tg.start_soon(one, index, call)
    return results


def _in(seconds: float) -> Any:
    from datetime import UTC, datetime, timedelta

    return datetime.now(UTC) + timedelta(seconds=seconds)
