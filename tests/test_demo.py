"""``asyncjobs demo``: the newcomer's first command finishes fast and shows what it promises."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import anyio
import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def section(text: str, title: str) -> list[str]:
    return text.split(f"\n{title}")[1].split("\n\n")[0].splitlines()[1:]


@pytest.mark.timeout(30)
async def test_demo_shows_retry_delay_schedule_and_cancel_within_seconds(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    started = time.monotonic()
    result = await anyio.run_process(
        [sys.executable, "-m", "asyncjobs", "demo"], cwd=tmp_path, env=env, check=False
    )
    elapsed = time.monotonic() - started
    out = result.stdout.decode()

    assert result.returncode == 0, result.stderr.decode()
    assert elapsed < 15
    assert result.stderr == b""
    statuses = {tuple(line.split()[1:3]) for line in section(out, "The jobs now")[1:]}
    assert {
        ("completed", "onboard-user"),
        ("completed", "send-reminder"),
        ("cancelled", "send-newsletter"),
        ("completed", "tidy-up"),
    } <= statuses
    workflow_log = out.split("job 1 onboard-user: completed\n")[1].split("\n  job ")[0]
    steps = [line.split()[1:4] for line in workflow_log.splitlines()]
    assert steps == [
        ["fetch-profile", "#profile", "succeeded"],
        ["send-welcome", "#welcome", "failed"],
        ["send-welcome", "#welcome", "succeeded"],
    ]
    assert "ConnectionError: mail server not answering" in workflow_log
    assert "... and cancelled before it ran" in out
    assert "queued by its schedule" in out
    assert list(tmp_path.iterdir()) == []  # nothing left behind
