"""Real worker processes: a SIGKILL loses nothing; several workers run each job exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

import asyncjobs
from tests import proc_worker

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def start_worker(url: str, out: Path, mode: str, start_at: float = 0) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "PROC_WORKER_START_AT": str(start_at),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.proc_worker", url, str(out), mode], cwd=ROOT, env=env
    )


async def wait_for_line(path: Path, text: str, timeout: float = 20) -> None:
    with anyio.fail_after(timeout):
        while not (path.exists() and text in path.read_text()):
            await anyio.sleep(0.02)


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.timeout(60)
async def test_sigkill_mid_workflow_resumes_in_another_process(
    database_url: str, tmp_path: Path
) -> None:
    out = tmp_path / "trace.txt"
    jobs = proc_worker.make_jobs(database_url)
    async with jobs.lifespan(auto_run=False):
        job = await jobs.queue(workflow="crashy")
        victim = start_worker(database_url, out, "stall")
        try:
            await wait_for_line(out, "step2")
        finally:
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=10)
        leased = await jobs.get(job.id)
        assert leased is not None and leased.status == "processing"
        assert [e.task_id for e in leased.log] == ["1"]
        killed_at = time.monotonic()
        rescuer = start_worker(database_url, out, "rescue")
        assert await anyio.to_thread.run_sync(finish, rescuer) == 0
        done = await jobs.get(job.id)
    assert done is not None
    assert (done.status, done.total_tried) == ("completed", 1)
    assert [(e.task_id, e.state) for e in done.log] == [("1", "succeeded"), ("2", "succeeded")]
    lines = out.read_text().splitlines()
    assert sum(line.startswith("step1") for line in lines) == 1, lines
    assert sum(line.startswith("step2") for line in lines) == 2, lines
    assert time.monotonic() - killed_at < 30


@pytest.mark.timeout(120)
async def test_several_processes_run_each_job_exactly_once(
    database_url: str, tmp_path: Path, make_jobs: Callable[..., asyncjobs.Jobs]
) -> None:
    total = 600
    jobs = proc_worker.make_jobs(database_url)
    async with jobs.lifespan(auto_run=False):
        await jobs.queue_many([{"task": "count", "input": {"n": n}} for n in range(total)])
    outs = [tmp_path / f"worker-{i}.txt" for i in range(3)]
    start_at = time.time() + 4  # after every interpreter has imported and connected
    workers = [start_worker(database_url, out, "drain", start_at) for out in outs]
    codes = [await anyio.to_thread.run_sync(finish, w, 100) for w in workers]
    assert codes == [0, 0, 0]
    runs = Counter(line for out in outs if out.exists() for line in out.read_text().splitlines())
    assert len(runs) == total
    assert set(runs.values()) == {1}
    assert all(out.exists() and out.read_text() for out in outs[:2]), "work was shared"
    async with jobs.lifespan(auto_run=False):
        done = await jobs.find(where={"status": "completed"}, limit=total + 10)
        assert len(done) == total
        assert all(j.total_tried == 1 for j in done)
