"""A fault-injection run's figures, from the ledger, the final job rows and the injected faults.

Pure functions over plain records, so the reading of a ledger is tested on its own.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from faults_ledger import FAILED, FINISHED, STARTED, Entry


@dataclass(frozen=True)
class Event:
    """A fault: a worker killed (``back`` = ``at``) or a server restart (``back``: up again)."""

    kind: str
    at: float
    back: float
    worker: str = ""  # the worker killed
    down: float = 0.0  # when the restarted server first refused connections


@dataclass(frozen=True)
class JobRow:
    """A queued job as the drain left it (``status`` ``missing`` when no row is left)."""

    id: int
    status: str
    completed_at: float | None
    total_tried: int
    expected_tries: int  # 1, plus the failures the job asked for
    error: str = ""


@dataclass(frozen=True)
class Recovery:
    event: Event
    in_flight: int  # jobs the fault caught unfinished
    recovered_after: float | None  # seconds from ``back`` until the last of them completed
    # (0 when they all completed before the server went down; None when none completed)
    resumed_after: float | None  # seconds from ``back`` until the first completion
    never: int = 0  # caught jobs that did not complete (failed for good, or stuck)


@dataclass
class Figures:
    jobs: int
    lost: int = 0
    stuck: int = 0
    failed: int = 0
    finished_steps_rerun: int = 0
    interrupted_steps_rerun: int = 0
    tries_counted: int = 0
    untraced: int = (
        0  # completed jobs whose steps the ledger does not show all started and finished
    )
    recoveries: list[Recovery] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)  # failed jobs' errors
    steps_by_worker: dict[str, int] = field(default_factory=dict)  # steps each worker started

    def problems(self) -> dict[str, int]:
        """The figures that must be zero."""
        named = {
            "lost": self.lost,
            "stuck": self.stuck,
            "failed for good": self.failed,
            "finished steps re-run": self.finished_steps_rerun,
            "tries counted by crashes": self.tries_counted,
            "completed without a full ledger trail": self.untraced,
        }
        return {name: value for name, value in named.items() if value}


def figures(
    rows: list[JobRow], entries: list[Entry], events: list[Event], steps: tuple[str, ...]
) -> Figures:
    out = Figures(jobs=len(rows))
    by_status = defaultdict(list)
    for row in rows:
        by_status[row.status].append(row)
    out.lost = len(by_status["missing"])
    out.failed = len(by_status["failed"]) + len(by_status["cancelled"])
    out.stuck = len(rows) - out.lost - out.failed - len(by_status["completed"])
    out.tries_counted = sum(_tries_counted(row) for row in rows)
    for row in by_status["failed"] + by_status["cancelled"]:
        out.errors[row.error] = out.errors.get(row.error, 0) + 1
    out.finished_steps_rerun, out.interrupted_steps_rerun = step_reruns(entries)
    out.untraced = untraced(by_status["completed"], entries, steps)
    out.recoveries = [recovery(event, rows, entries) for event in events]
    for entry in entries:
        if entry.phase == STARTED:
            out.steps_by_worker[entry.worker] = out.steps_by_worker.get(entry.worker, 0) + 1
    return out


def _tries_counted(row: JobRow) -> int:
    if row.status == "completed":
        return max(0, row.total_tried - row.expected_tries)
    if row.status in ("failed", "cancelled"):  # it should have completed: every try is extra
        return max(0, row.total_tried - (row.expected_tries - 1))
    return 0


def step_reruns(entries: Iterable[Entry]) -> tuple[int, int]:
    """``(finished steps re-run, interrupted steps re-run)``.

    A start after the step's first ``finished`` row re-ran a finished step. Before it, every
    start beyond the first that did not follow an injected failure re-ran an interrupted one.
    """
    rows: dict[tuple[int, str], list[Entry]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: e.seq):
        rows[entry.job, entry.step].append(entry)
    finished_again = interrupted = 0
    for history in rows.values():
        done, starts, failures = False, 0, 0
        for entry in history:
            if entry.phase == FINISHED:
                done = True
            elif entry.phase == STARTED and done:
                finished_again += 1
            elif entry.phase == STARTED:
                starts += 1
            elif entry.phase == FAILED and not done:
                failures += 1
        interrupted += max(0, starts - 1 - failures)
    return finished_again, interrupted


def untraced(completed: list[JobRow], entries: Iterable[Entry], steps: tuple[str, ...]) -> int:
    """Completed jobs for which some step has no ``started`` or no ``finished`` row."""
    seen = {(e.job, e.step, e.phase) for e in entries}
    return sum(
        any((row.id, s, phase) not in seen for s in steps for phase in (STARTED, FINISHED))
        for row in completed
    )


def recovery(event: Event, rows: list[JobRow], entries: list[Entry]) -> Recovery:
    """How long the jobs a fault caught unfinished took to complete, from when it was over.

    A kill caught the jobs its worker had written to the ledger; a restart, every job with a
    ledger row from before the server went down. Either way, only jobs not yet completed when
    it struck (for a restart: went down, which can be a second after the restart was asked).
    """
    struck = event.at if event.kind == "kill" else event.down
    if event.kind == "kill":
        touched = {e.job for e in entries if e.worker == event.worker}
    else:
        touched = {e.job for e in entries if e.at < struck}
    caught = [r for r in rows if r.id in touched and not _done_by(r, struck)]
    after = [r.completed_at for r in rows if r.completed_at and r.completed_at >= event.back]
    resumed = min(after) - event.back if after else None
    times = [r.completed_at for r in caught if r.completed_at is not None]
    last = max(0.0, max(times) - event.back) if times else None
    return Recovery(event, len(caught), last, resumed, never=len(caught) - len(times))


def _done_by(row: JobRow, moment: float) -> bool:
    return row.completed_at is not None and row.completed_at < moment


def recovery_summary(recoveries: list[Recovery], kind: str, lease: float) -> str:
    mine = [r for r in recoveries if r.event.kind == kind]
    known = [r.recovered_after for r in mine if r.recovered_after is not None]
    never = sum(r.never for r in mine)
    text = "n/a"
    if known:
        text = (
            f"max {max(known):.1f} s, median {statistics.median(known):.1f} s (lease {lease:g} s)"
        )
    return f"{text}; {never} caught jobs never completed" if never else text
