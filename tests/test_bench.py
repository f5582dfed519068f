"""The benchmark still runs end to end, at a tiny size (no speed is asserted here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import asyncjobs

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    *("--quick", "--runs", "1", "--jobs", "60", "--cap", "2", "--one-jobs", "20", "--procs", "2"),
    *("--samples", "3", "--idle-seconds", "0.5", "--scale-rows", "500"),
    *("--fast-jobs", "20", "--slow-seconds", "0.2", "--workflow-jobs", "30"),
]
ANALYSIS = "## Where the time goes\n\nWritten by hand; a new run keeps it.\n"


def _script(name: str, *args: str) -> str:
    """Run ``bench/<name>`` on this checkout's asyncjobs; its standard output."""
    source = str(Path(asyncjobs.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / name), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # An error logged mid-run (say, by a tick) means a figure measured something broken.
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    return result.stdout


def _bench(out: Path, *args: str) -> str:
    assert "W1 drain" in _script("run.py", *TINY, "--out", str(out), *args)
    return out.read_text()


def _postgres_url() -> str:
    url = os.environ.get("ASYNCJOBS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set ASYNCJOBS_TEST_POSTGRES_URL to run the PostgreSQL benchmark smoke test")
    return url


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_runs_on_sqlite_and_keeps_the_analysis(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# old figures\n\n" + ANALYSIS)
    text = _bench(out, "--backend", "sqlite")
    assert "| W1 drain, 1 process, run(limit=10) | SQLite |" in text
    assert "| W2 queue_many(), batches of 100 | SQLite |" in text
    assert "| W7 fast ones done, over the ideal | SQLite |" in text
    assert (
        "| W8 autoRun drain, limit=10: 60 jobs queue_many()'d into an idle app | SQLite |" in text
    )
    assert "| W9 drain of 30 3-step workflows, run(limit=10) | SQLite |" in text
    assert "old figures" not in text
    assert text.endswith(ANALYSIS)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_runs_on_postgres(tmp_path: Path) -> None:
    url = _postgres_url()
    text = _bench(tmp_path / "RESULTS.md", "--backend", "postgres", "--postgres-url", url)
    assert "| W1 drain, 2 processes, run(limit=10) | PostgreSQL |" in text
    assert "| W6 drain, limit=10, over 500 finished jobs | PostgreSQL |" in text
    assert "| W7 fast ones done, over the ideal | PostgreSQL |" in text
    assert "| W9 drain of 30 3-step workflows, run(limit=10) | PostgreSQL |" in text


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_selects_the_autorun_and_workflow_workloads_alone(tmp_path: Path) -> None:
    """W8 and W9 measure their references themselves when W1 is not chosen."""
    url = _postgres_url()
    out = tmp_path / "RESULTS.md"
    text = _bench(out, "--backend", "postgres", "--postgres-url", url, "--only", "w8,w9")
    assert (
        "| W8 autoRun drain, limit=10: 60 jobs queue_many()'d into an idle app | PostgreSQL |"
        in text
    )
    assert "(driver claim-10/complete-10) |" in text
    assert "(W1 limit=10, same run) |" in text
    assert "W7" not in text.split("## How")[0] and "W2" not in text.split("## How")[0]


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_peer_run_drains_with_pgqueuer_and_asyncjobs() -> None:
    pytest.importorskip("pgqueuer", reason="the peer run needs pip install -e '.[bench]'")
    url = _postgres_url()
    out = _script("peers.py", "--jobs", "60", "--runs", "1", "--postgres-url", url, "--markdown")
    assert "| pgqueuer batch_size=10 drain | PostgreSQL |" in out
    assert "| pgqueuer batch_size=100 drain | PostgreSQL |" in out
    assert "| asyncjobs W8 autoRun drain, limit=10, vs pgqueuer batch_size=10 | PostgreSQL |" in out


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_profiles_of_a_workflow_drain_and_of_bulk_enqueue_run() -> None:
    drain = _script("profile_drain.py", "--jobs", "30", "--workflow", "--tool", "cprofile")
    assert drain.startswith("30 jobs at limit=10:"), drain[:200]
    assert "own time by component (cProfile, µs per job over 30 jobs):" in drain
    assert "asyncjobs.step_runner" in drain
    enqueue = _script("profile_enqueue.py", "--rows", "200", "--batch", "50")
    assert enqueue.startswith("200 rows in queue_many() calls of 50:"), enqueue[:200]
    assert "own time by component (cProfile, µs per row over 200 rows):" in enqueue
