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
]
ANALYSIS = "## Where the time goes\n\nWritten by hand; a new run keeps it.\n"


def _bench(out: Path, *args: str) -> str:
    source = str(Path(asyncjobs.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), *TINY, "--out", str(out), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    # An error logged mid-run (say, by a tick) means a figure measured something broken.
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    assert "W1 drain" in result.stdout
    return out.read_text()


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_runs_on_sqlite_and_keeps_the_analysis(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    out.write_text("# old figures\n\n" + ANALYSIS)
    text = _bench(out, "--backend", "sqlite")
    assert "| W1 drain, 1 process, run(limit=10) | SQLite |" in text
    assert "| W2 queue_many(), batches of 100 | SQLite |" in text
    assert "old figures" not in text
    assert text.endswith(ANALYSIS)


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_bench_runs_on_postgres(tmp_path: Path) -> None:
    url = os.environ.get("ASYNCJOBS_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("set ASYNCJOBS_TEST_POSTGRES_URL to run the PostgreSQL benchmark smoke test")
    text = _bench(tmp_path / "RESULTS.md", "--backend", "postgres", "--postgres-url", url)
    assert "| W1 drain, 2 processes, run(limit=10) | PostgreSQL |" in text
    assert "| W6 drain, limit=10, over 500 finished jobs | PostgreSQL |" in text
