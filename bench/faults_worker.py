"""A worker process of the fault-injection run, and the workflow it drains.

``python bench/faults_worker.py NAME CONFIG_JSON`` starts the Jobs engine on the run's jobs
database (autoRun every second, or a ``run()`` loop), prints ``ready`` and works until its stdin
closes. Every step of the ``faulty`` workflow writes to the ledger (see faults_ledger.py).
With ``waits``, the workflow also sleeps after step 1 and waits for its signal after step 2.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import anyio
from faults_ledger import FAILED, FINISHED, STARTED, Ledger, open_ledger

import asyncjobs

STEPS = ("1", "2", "3")
FAILING_STEP = "2"
START_FOR = 120.0  # seconds a worker keeps trying to start while the server is away
logger = logging.getLogger("faults.worker")


@dataclass(frozen=True)
class WorkerConfig:
    """What every worker of a run shares."""

    jobs_url: str
    ledger_url: str
    lease: float = 3.0
    limit: int = 10
    engine: str = "autorun"  # or "loop": run() in a loop, as a dedicated worker would
    retries: int = 0
    step_ms: float = 5.0
    waits: bool = False  # sleep after step 1, wait for the signal "go" after step 2
    sleep_ms: float = 300.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))


class InjectedFailure(Exception):
    """The failure a job asked for (its input's ``fail``), on its first try only."""


class _Process:
    """This process's name, ledger and settings, for the handlers."""

    name = "orchestrator"
    ledger: Ledger | None = None
    step_ms = 0.0
    waits = False
    sleep_ms = 0.0


async def _note(job: int, step: str, attempt: str, phase: str) -> None:
    assert _Process.ledger is not None, "the handlers run only in a worker process"
    await _Process.ledger.write(job, step, _Process.name, attempt, phase)


@asyncjobs.task("step")
async def step(*, input: dict[str, Any], job: asyncjobs.Job) -> dict[str, str]:
    await _note(job.id, input["step"], input["attempt"], STARTED)
    if _Process.step_ms:
        await anyio.sleep(_Process.step_ms / 1000)
    if input["fail"] and job.total_tried == 0:
        await _note(job.id, input["step"], input["attempt"], FAILED)
        raise InjectedFailure(f"job {job.id} fails step {input['step']} once, as asked")
    return {"step": input["step"]}


async def faulty(
    *, input: dict[str, Any], tasks: Any, job: asyncjobs.Job, sleep: Any, wait_for_signal: Any
) -> dict[str, Any]:
    attempt = uuid.uuid4().hex[:12]  # this run of the handler
    got = None
    for step_id in STEPS:
        fail = bool(input.get("fail")) and step_id == FAILING_STEP
        await tasks.step(step_id, input={"step": step_id, "attempt": attempt, "fail": fail})
        await _note(job.id, step_id, attempt, FINISHED)
        if _Process.waits and step_id == STEPS[0]:
            await sleep("nap", _Process.sleep_ms / 1000)
        if _Process.waits and step_id == STEPS[1]:
            got = (await wait_for_signal("go", "go"))["i"]
    return {"i": input["i"], "got": got}


def make_jobs(config: WorkerConfig) -> asyncjobs.Jobs:
    """The engine as every worker (and the orchestrator, to queue and read) builds it."""
    entries = [asyncjobs.AutoRun(cron="* * * * * *", limit=config.limit)]
    return asyncjobs.Jobs(
        tasks=[step],
        workflows=[asyncjobs.Workflow("faulty", faulty, retries=config.retries)],
        database_url=config.jobs_url,
        auto_run=entries if config.engine == "autorun" else [],
        lease=asyncjobs.Lease(duration=config.lease, safety_buffer=min(1.0, config.lease / 4)),
        delete_job_on_complete=False,
    )


async def _start(jobs: asyncjobs.Jobs, config: WorkerConfig) -> None:
    """Start, retrying while the database is away (a replacement born during a restart)."""
    with anyio.fail_after(START_FOR):
        while True:
            try:
                return await jobs.start(auto_run=config.engine == "autorun")
            except Exception as exc:
                logger.warning("start retried: %s", exc)
                await anyio.sleep(0.5)


async def _run_loop(jobs: asyncjobs.Jobs, config: WorkerConfig) -> None:
    """What ``asyncjobs run`` in a loop does: run a batch, pause only when idle or on error."""
    while True:
        try:
            result = await jobs.run(limit=config.limit)
        except Exception:
            logger.exception("run() failed")
            await anyio.sleep(0.5)
            continue
        if result.no_jobs_remaining:
            await anyio.sleep(0.1)


async def _stdin_closed() -> None:
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()


class _OneLineErrors(logging.Formatter):
    """An error's exception on the same line, so the run can count them; traceback after."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            head, _, rest = line.partition("\n")
            line = f"{head} [{type(exc).__name__}: {exc}]\n{rest}"
        return line


async def serve(name: str, config: WorkerConfig) -> None:
    _Process.name, _Process.step_ms = name, config.step_ms
    _Process.waits, _Process.sleep_ms = config.waits, config.sleep_ms
    _Process.ledger = open_ledger(config.ledger_url)
    jobs = make_jobs(config)
    await _start(jobs, config)
    print("ready", flush=True)
    try:
        async with anyio.create_task_group() as tg:
            if config.engine == "loop":
                tg.start_soon(_run_loop, jobs, config)
            await _stdin_closed()
            tg.cancel_scope.cancel()
    finally:
        await jobs.stop(timeout=5)
        await _Process.ledger.close()


def main(argv: list[str]) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(_OneLineErrors("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    asyncio.run(serve(argv[0], WorkerConfig(**json.loads(argv[1]))))


if __name__ == "__main__":
    main(sys.argv[1:])
