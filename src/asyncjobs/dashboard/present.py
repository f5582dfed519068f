"""How the dashboard shows values: counts, durations, ages, JSON, notes and step timelines."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from asyncjobs.checks import CHILD_TOPIC
from asyncjobs.durable import CHILD, QUEUED, SIGNAL
from asyncjobs.models import FOREVER, Job, JobLogEntry, JobStatusName

STATUSES: tuple[str, ...] = tuple(get_args(JobStatusName))
UNITS = ((86400, "d"), (3600, "h"), (60, "min"), (1, "s"))


def count(value: int, capped: bool = False) -> str:
    """``1,234``, or ``10,000+`` when counting stopped there."""
    return f"{value:,}{'+' if capped else ''}"


def duration(seconds: float) -> str:
    """``12 ms``, ``3.4 s``, ``2 min 5 s``, ``3 h 4 min``, ``2 d 1 h``."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(seconds)
    index = next(i for i, (size, _) in enumerate(UNITS) if whole >= size)
    size, unit = UNITS[index]
    text = f"{whole // size} {unit}"
    if index + 1 < len(UNITS):
        smaller, smaller_unit = UNITS[index + 1]
        text += f" {whole % size // smaller} {smaller_unit}"
    return text


def age(moment: datetime | None, now: datetime) -> str:
    """``5 s ago``, ``in 3 min``, ``just now``; an empty string for no time."""
    if moment is None:
        return ""
    delta = (now - moment).total_seconds()
    if abs(delta) < 1:
        return "just now"
    rough = next(f"{int(abs(delta) // size)} {unit}" for size, unit in UNITS if abs(delta) >= size)
    return f"{rough} ago" if delta > 0 else f"in {rough}"


def utc(moment: datetime | None) -> str:
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(moment: datetime | None) -> str:
    """For ``<time datetime=...>``: the page's script shows it as "5 s ago"."""
    return "" if moment is None else moment.isoformat(timespec="milliseconds")


def pretty(value: Any) -> str:
    """JSON as people read it (the template escapes it)."""
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


def short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, separators=(", ", ": "))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_line(error: Mapping[str, Any] | None) -> str:
    """``Name: message`` on one line (the message alone for a cancellation)."""
    if not error:
        return ""
    message = " ".join(str(error.get("message", "")).split())
    name = error.get("name")
    return f"{name}: {message}" if name and not error.get("cancelled") else message


@dataclass(frozen=True)
class Note:
    """The one thing worth knowing about a job in a list: words, and a time to show after."""

    text: str
    at: datetime | None = None


def note(row: Mapping[str, Any], status: str) -> Note:
    if status in ("failed", "cancelled"):
        return Note(error_line(row.get("error")))
    if status == "waiting":
        return Note("runs", row.get("wait_until"))
    if status == "processing":
        return Note("lease ends", row.get("processing_until"))
    if status == "suspended":
        until = row.get("wait_until")
        return Note("until woken") if until == FOREVER else Note("until woken or", until)
    if row.get("error"):
        return Note(f"will retry · {error_line(row.get('error'))}")
    return Note("")


def field(job: Job, name: str) -> Any:
    """A ``Job`` attribute that later versions add (``output``, ``priority`` ...), or None."""
    return getattr(job, name, None)


@dataclass(frozen=True)
class Signal:
    """One signal sent to a job, and whether one of its steps has taken it."""

    topic: str
    payload: Any
    sent: datetime
    consumed: bool


def signals(rows: Sequence[Mapping[str, Any]], log: Sequence[JobLogEntry]) -> list[Signal]:
    """The job's signals as stored, each marked consumed when a step of ``log`` took it: a
    ``wait_for_signal`` step logs the signal's id, a ``run_child`` step its child's outcome."""
    taken, children = _taken(log)
    return [
        Signal(
            topic=row["topic"],
            payload=row["payload"],
            sent=row["created_at"],
            consumed=row["id"] in taken or _child_of(row["topic"]) in children,
        )
        for row in rows
    ]


def _taken(log: Sequence[JobLogEntry]) -> tuple[set[int], set[str]]:
    """Ids of the signals the log's waits consumed, and the children whose outcome it took."""
    taken: set[int] = set()
    children: set[str] = set()
    queued: dict[str, str] = {}  # step id -> the child its last run_child:queued entry queued
    for entry in log:
        output = entry.output if isinstance(entry.output, dict) else {}
        if entry.task_slug == SIGNAL and isinstance(output.get("signal"), int):
            taken.add(output["signal"])
        elif entry.task_slug == QUEUED:
            queued[entry.task_id] = str(output.get("child"))
        elif entry.task_slug == CHILD and entry.task_id in queued:
            children.add(queued.pop(entry.task_id))
    return taken, children


def _child_of(topic: str) -> str | None:
    return topic.removeprefix(CHILD_TOPIC) if topic.startswith(CHILD_TOPIC) else None


@dataclass(frozen=True)
class Step:
    """One step attempt placed on the job's timeline."""

    entry: JobLogEntry
    depth: int
    left: float  # percent of the timeline
    width: float
    took: str
    offset: str  # since the first step started


def timeline(log: Sequence[JobLogEntry]) -> list[Step]:
    """Step attempts in start order, each under the step that called it, as Gantt bars."""
    if not log:
        return []
    start = min(e.executed_at for e in log)
    span = max((max(e.completed_at for e in log) - start).total_seconds(), 1e-6)
    placed = []
    for entry, depth in _nested(log):
        offset = (entry.executed_at - start).total_seconds()
        took = (entry.completed_at - entry.executed_at).total_seconds()
        left = min(offset / span * 100, 99.5)
        width = max(min(took / span * 100, 100 - left), 0.5)
        step = Step(entry, depth, round(left, 2), round(width, 2), duration(took), duration(offset))
        placed.append(step)
    return placed


def _nested(log: Sequence[JobLogEntry]) -> list[tuple[JobLogEntry, int]]:
    attempts: dict[tuple[str, str], list[int]] = {}
    for index, entry in enumerate(log):
        attempts.setdefault((entry.task_slug, entry.task_id), []).append(index)
    children: dict[int, list[int]] = {}
    for index, entry in enumerate(log):
        children.setdefault(_parent_index(log, attempts, entry), []).append(index)
    ordered: list[tuple[JobLogEntry, int]] = []
    pending = [(index, 0) for index in _by_start(log, children.get(-1, []))][::-1]
    while pending:  # depth first, without recursion: a deep log cannot overflow the stack
        index, depth = pending.pop()
        ordered.append((log[index], depth))
        below = _by_start(log, children.get(index, []))
        pending.extend((child, depth + 1) for child in reversed(below))
    shown = {id(entry) for entry, _ in ordered}
    return ordered + [(entry, 0) for entry in log if id(entry) not in shown]  # parent cycles


def _by_start(log: Sequence[JobLogEntry], indexes: list[int]) -> list[int]:
    return sorted(indexes, key=lambda i: log[i].executed_at)


def _parent_index(
    log: Sequence[JobLogEntry], attempts: dict[tuple[str, str], list[int]], entry: JobLogEntry
) -> int:
    """The attempt of the parent step that was running when ``entry`` started, else -1."""
    if not entry.parent:
        return -1
    key = (entry.parent.get("task_slug", ""), entry.parent.get("task_id", ""))
    found = -1
    for index in attempts.get(key, []):
        other = log[index]
        if other is not entry and (
            other.executed_at <= entry.executed_at <= other.completed_at or found < 0
        ):
            found = index
    return found


@dataclass(frozen=True)
class Bar:
    """One minute of a queue's chart: completions (green) with failures stacked above."""

    x: float
    done_y: float
    done_h: float
    fail_y: float
    fail_h: float
    title: str


CHART_W, CHART_H, COLUMN = 600.0, 96.0, 10.0


def chart(completed: Sequence[int], failed: Sequence[int], start: datetime) -> list[Bar]:
    """Bars for an SVG ``viewBox="0 0 600 96"``: one per minute since ``start``."""
    peak = max([a + b for a, b in zip(completed, failed, strict=True)] + [1])
    bars = []
    for minute, (done, fail) in enumerate(zip(completed, failed, strict=True)):
        done_h = done / peak * CHART_H
        fail_h = fail / peak * CHART_H
        at = start.timestamp() + minute * 60
        label = datetime.fromtimestamp(at, start.tzinfo).strftime("%H:%M")
        bars.append(
            Bar(
                x=minute * COLUMN + 1,
                done_y=round(CHART_H - done_h, 2),
                done_h=round(done_h, 2),
                fail_y=round(CHART_H - done_h - fail_h, 2),
                fail_h=round(fail_h, 2),
                title=f"{label} UTC · {done:,} completed · {fail:,} failed",
            )
        )
    return bars
