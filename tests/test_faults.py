"""The fault-injection run: its ledger reading, and its short version against real faults."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import asyncjobs

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "bench"))  # the run's own modules, shadowing nothing

from faults_figures import Event, JobRow, recovery, step_reruns  # noqa: E402
from faults_ledger import FAILED, FINISHED, STARTED, Entry  # noqa: E402
from faults_setup import Server, SetupError  # noqa: E402

RESTART_ENV = "ASYNCJOBS_TEST_POSTGRES_RESTART_COMMAND"  # default: pg_ctlcluster, local cluster
MUST_BE_ZERO = ("lost", "stuck", "failed", "finished_steps_rerun", "tries_counted", "untraced")


def entry(seq: int, phase: str, *, job: int = 1, step: str = "1", worker: str = "w1") -> Entry:
    return Entry(seq, f"k{seq}", job, step, worker, "a", phase, float(seq))


def test_a_start_after_a_finish_is_a_finished_step_run_again() -> None:
    entries = [entry(1, STARTED), entry(2, FINISHED), entry(3, STARTED, worker="w2")]
    assert step_reruns(entries) == (1, 0)


def test_a_second_start_before_the_finish_is_an_interrupted_step_run_again() -> None:
    entries = [entry(1, STARTED), entry(2, STARTED, worker="w2"), entry(3, FINISHED)]
    assert step_reruns(entries) == (0, 1)


def test_a_start_after_an_injected_failure_is_no_rerun() -> None:
    entries = [entry(1, STARTED), entry(2, FAILED), entry(3, STARTED), entry(4, FINISHED)]
    assert step_reruns(entries) == (0, 0)


def test_a_kill_catches_only_its_workers_unfinished_jobs() -> None:
    entries = [entry(1, STARTED, job=1), entry(2, STARTED, job=2), entry(3, STARTED, job=3)]
    entries += [entry(4, STARTED, job=4, worker="w2"), entry(5, STARTED, job=5)]
    rows = [
        JobRow(1, "completed", 4.0, 1, 1),  # done before the kill at 5.0
        JobRow(2, "completed", 8.0, 1, 1),
        JobRow(3, "completed", 9.5, 1, 1),
        JobRow(4, "completed", 20.0, 1, 1),  # another worker's
        JobRow(5, "failed", None, 1, 1),
    ]
    found = recovery(Event("kill", 5.0, 5.0, "w1"), rows, entries)
    assert (found.in_flight, found.recovered_after, found.never) == (3, 4.5, 1)
    assert found.resumed_after == 3.0


def test_a_restart_catches_the_jobs_begun_before_the_server_went_down() -> None:
    entries = [entry(1, STARTED, job=1), entry(6, STARTED, job=2), entry(8, STARTED, job=3)]
    rows = [
        JobRow(1, "completed", 5.5, 1, 1),  # done after the restart was asked, before the outage
        JobRow(2, "completed", 9.0, 1, 1),
        JobRow(3, "completed", 9.0, 1, 1),  # begun after the server went down
    ]
    found = recovery(Event("restart", 5.0, 8.0, down=7.0), rows, entries)
    assert (found.in_flight, found.recovered_after) == (1, 1.0)


# -- the short run, as real processes ----------------------------------------------------


def server_url(backend: str) -> str:
    if backend == "sqlite":
        return ""
    url = os.environ.get("ASYNCJOBS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set ASYNCJOBS_TEST_POSTGRES_URL to run the PostgreSQL fault-injection run")
    return url


def run_faults(tmp_path: Path, backend: str, *args: str) -> dict[str, Any]:
    out = tmp_path / "figures.json"
    source = str(Path(asyncjobs.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    url = server_url(backend)
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "faults.py"), "--short", "--seed", "1"]
        + ["--backend", backend, "--json", str(out), *args]
        + (["--database-url", url] if url else []),
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert out.exists(), result.stdout + result.stderr[-4000:]
    figures: dict[str, Any] = json.loads(out.read_text())
    figures["output"], figures["returncode"] = result.stdout, result.returncode
    return figures


def assert_nothing_lost_or_run_twice(figures: dict[str, Any]) -> None:
    assert {name: figures[name] for name in MUST_BE_ZERO} == dict.fromkeys(MUST_BE_ZERO, 0), (
        figures["output"]
    )
    assert figures["returncode"] == 0, figures["output"]


@pytest.mark.slow
@pytest.mark.timeout(100)
def test_a_killed_worker_loses_nothing_and_its_jobs_finish_elsewhere(
    tmp_path: Path, backend: str
) -> None:
    figures = run_faults(tmp_path, backend, "--mode", "kill")
    assert_nothing_lost_or_run_twice(figures)
    [kill] = figures["recoveries"]
    assert kill["event"]["kind"] == "kill"
    assert kill["in_flight"] > 0, figures["output"]  # the kill caught jobs mid-run
    assert kill["recovered_after"] < 60, figures["output"]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(100)
def test_a_postgres_restart_loses_nothing_and_costs_no_try(tmp_path: Path) -> None:
    command = os.environ.get(RESTART_ENV)
    server = Server(server_url("postgres"), command)
    try:
        asyncio.run(server.prepare())
    except SetupError as exc:
        pytest.skip(f"cannot restart the test server ({exc}); {RESTART_ENV} may say how")
    how = ["--restart-command", command] if command else []
    try:
        figures = run_faults(tmp_path, "postgres", "--mode", "restart", *how)
    finally:
        server.touched = True  # whatever happened to the run, leave the server accepting
        asyncio.run(server.ensure_up())
    assert_nothing_lost_or_run_twice(figures)
    [restart] = figures["recoveries"]
    assert restart["event"]["kind"] == "restart"
    assert restart["in_flight"] > 0, figures["output"]  # the restart caught jobs mid-run
    assert restart["recovered_after"] < 60, figures["output"]
