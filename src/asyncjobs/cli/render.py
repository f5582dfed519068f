"""How the command line shows jobs: tables, a job's details and step timeline, JSON."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TextIO

from asyncjobs.models import Job, JobLogEntry

NONE = "-"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
STATUS_COLORS = {
    "completed": "32",
    "failed": "31",
    "cancelled": "33",
    "processing": "36",
    "waiting": "35",
    "suspended": "35",
    "queued": "34",
    "succeeded": "32",
}


class Style:
    """ANSI styling, only on a terminal and unless ``NO_COLOR`` is set."""

    def __init__(self, stream: TextIO) -> None:
        self.enabled = stream.isatty() and not os.environ.get("NO_COLOR")

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.enabled else text

    @staticmethod
    def plain(text: str) -> str:
        """``text`` without its colour codes: what a terminal shows."""
        return ANSI.sub("", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def status(self, text: str, width: int = 0) -> str:
        padded = text.ljust(width)
        code = STATUS_COLORS.get(text)
        return self._wrap(code, padded) if code else padded


def out(text: str = "") -> None:
    print(text, file=sys.stdout, flush=True)


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)


def compact(value: Any, width: int = 60) -> str:
    """One-line JSON, shortened with an ellipsis."""
    text = json.dumps(value, default=str, separators=(", ", ": "))
    return text if len(text) <= width else text[: width - 1] + "…"


def when(moment: datetime | None, *, millis: bool = False, date: bool = True) -> str:
    if moment is None:
        return NONE
    text = moment.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}" if millis else text


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], style: Style) -> list[str]:
    """Aligned columns; on a terminal the last column is cut to the window's width."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    status_col = headers.index("STATUS") if "STATUS" in headers else -1
    limit = shutil.get_terminal_size().columns if style.enabled else 0
    lines = [style.bold(_line(headers, widths, -1, style))]
    for row in rows:
        line = _line(row, widths, status_col, style)
        lines.append(_cut(line, limit, style))
    return lines


def _line(cells: Sequence[str], widths: Sequence[int], status_col: int, style: Style) -> str:
    parts = []
    for i, cell in enumerate(cells):
        last = i == len(cells) - 1
        width = 0 if last else widths[i]
        parts.append(style.status(cell, width) if i == status_col else cell.ljust(width))
    return "  ".join(parts).rstrip()


def _cut(line: str, limit: int, style: Style) -> str:
    # Colour codes add invisible characters; count only what shows.
    hidden = len(line) - len(Style.plain(line)) if style.enabled else 0
    if limit and len(line) - hidden > limit:
        return line[: limit + hidden - 1] + "…"
    return line


def job_rows(jobs: Sequence[Job]) -> list[list[str]]:
    return [
        [
            str(job.id),
            job.status,
            job.slug,
            job.queue,
            str(job.total_tried),
            when(job.created_at),
            note(job),
        ]
        for job in jobs
    ]


JOB_HEADERS = ("ID", "STATUS", "TASK/WORKFLOW", "QUEUE", "TRIES", "CREATED (UTC)", "NOTE")


def note(job: Job) -> str:
    """The one thing worth knowing about a job in a list."""
    if job.error and job.status in ("failed", "cancelled"):
        return error_text(job.error)
    if job.status == "waiting":
        return f"runs after {when(job.wait_until)}"
    if job.status == "processing":
        return f"leased until {when(job.processing_until)}"
    if job.status == "suspended":
        return "until a signal or its child" + (
            f", or {when(job.wait_until)}" if job.wait_until else ""
        )
    if job.error:
        return f"will retry; last error {error_text(job.error)}"
    return ""


def error_text(error: dict[str, Any] | None) -> str:
    if not error:
        return NONE
    message = " ".join(str(error.get("message", "")).split())
    name = error.get("name")
    return f"{name}: {message}" if name and name != "JobCancelled" else message


def job_detail(job: Job, style: Style) -> list[str]:
    """Everything about one job: fields, input, error, then its steps as a timeline."""
    kind = "workflow" if job.workflow_slug else "task"
    lines = [f"{style.bold(f'Job {job.id}')}  {kind} {job.slug}  {style.status(job.status)}"]
    fields = [
        ("queue", job.queue),
        ("created", _utc(job.created_at)),
        ("updated", _utc(job.updated_at)),
        ("wait until", _utc(job.wait_until)),
        ("completed", _utc(job.completed_at)),
        ("tries", str(job.total_tried)),
        ("input", compact(job.input, 200)),
        ("meta", compact(job.meta, 200)),
        ("error", error_text(job.error)),
    ]
    lines += [f"  {name:<11}{value}" for name, value in fields]
    lines += ["", style.bold("Steps"), *timeline(job.log, style)]
    trace = (job.error or {}).get("traceback")
    if trace:
        lines += ["", style.bold("Traceback"), *("  " + t for t in trace.rstrip().splitlines())]
    return lines


def _utc(moment: datetime | None) -> str:
    return NONE if moment is None else f"{when(moment, millis=True)} UTC"


def timeline(log: Sequence[JobLogEntry], style: Style, *, date: bool = True) -> list[str]:
    """One line per step attempt: when, which step, outcome, how long, output or error."""
    if not log:
        return ["  (no steps ran yet)"]
    rows = [_step_row(entry, style, date) for entry in log]
    width = max(len(r[1]) for r in rows)
    return [f"  {at}  {step.ljust(width)}  {rest}" for at, step, rest in rows]


def _step_row(entry: JobLogEntry, style: Style, date: bool) -> tuple[str, str, str]:
    took = (entry.completed_at - entry.executed_at).total_seconds()
    if entry.state == "succeeded":
        detail = f"-> {compact(entry.output)}"
    else:
        detail = error_text(entry.error)
    outcome = style.status(entry.state, len("succeeded"))
    step = f"{entry.task_slug} #{entry.task_id}"
    at = when(entry.executed_at, millis=True, date=date)
    return at, step, f"{outcome}  {took:6.3f}s  {detail}"
