"""The dashboard benchmark still runs end to end, at a tiny size (no speed is asserted here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import asyncjobs

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_dashboard_benchmark_runs_and_writes_its_section(tmp_path: Path) -> None:
    source = str(Path(asyncjobs.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([source, os.environ.get("PYTHONPATH", "")])}
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Where the time goes\n\nKept.\n")
    argv = [sys.executable, str(ROOT / "bench" / "dashboard.py"), "--backend", "sqlite"]
    argv += ["--rows", "3000", "--repeat", "1", "--write", "--results", str(results)]
    for _ in range(2):  # the second run replaces the section the first one added
        result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=25)
        assert result.returncode == 0, result.stderr[-4000:]
        assert "Traceback" not in result.stderr, result.stderr[-4000:]
    text = results.read_text()
    assert "## Where the time goes\n\nKept.\n" in text
    assert text.count("## Dashboard pages") == 1 and "| job list, status failed |" in text
