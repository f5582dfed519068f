"""How the command line draws jobs: colours and cut lines on a terminal, notes per status."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from asyncjobs.cli.render import JOB_HEADERS, Style, job_rows, note, table
from asyncjobs.models import Job

T = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def job(**fields: object) -> Job:
    return Job.model_validate(
        {"id": 7, "queue": "default", "created_at": T, "updated_at": T, **fields}
    )


def test_a_terminal_gets_colours_and_lines_cut_to_its_width(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.delenv("NO_COLOR", raising=False)
    failed = job(status="failed", task_slug="send", error={"name": "E", "message": "x" * 80})

    header, row = table(JOB_HEADERS, job_rows([failed]), Style(Terminal()))

    assert header.startswith("\x1b[1mID")
    assert "\x1b[31mfailed\x1b[0m" in row
    assert len(Style.plain(row)) == 60 and row.endswith("…")


def test_no_color_turns_styling_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")

    assert Style(Terminal()).status("failed") == "failed"


def test_the_note_says_what_matters_for_each_status() -> None:
    assert note(job(status="waiting", wait_until=T)) == "runs after 2026-01-05 12:00:00"
    assert note(job(status="processing", processing_until=T)).startswith("leased until")
    retrying = job(status="queued", error={"name": "OSError", "message": "down"})
    assert note(retrying) == "will retry; last error OSError: down"
    assert note(job(status="cancelled", error={"name": "JobCancelled", "message": "no"})) == "no"
    assert note(job(status="queued")) == ""
