"""How the dashboard shows values: durations, ages, step timelines, charts and filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asyncjobs.dashboard import present
from asyncjobs.dashboard.query import BadFilter, JobFilter
from asyncjobs.models import JobLogEntry
from asyncjobs.registry import Registry

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.0123, "12 ms"),
        (-1, "0 ms"),
        (3.45, "3.5 s"),
        (125, "2 min 5 s"),
        (3600 * 3 + 240, "3 h 4 min"),
        (86400 * 2 + 3600, "2 d 1 h"),
        (7200, "2 h 0 min"),
    ],
)
def test_durations_read_like_people_say_them(seconds: float, text: str) -> None:
    assert present.duration(seconds) == text


@pytest.mark.parametrize(
    ("offset", "text"),
    [(0.2, "just now"), (5, "5 s ago"), (-200, "in 3 min"), (90000, "1 d ago")],
)
def test_ages_are_rough_and_relative(offset: float, text: str) -> None:
    assert present.age(T0 - timedelta(seconds=offset), T0) == text
    assert present.age(None, T0) == ""


def test_counts_say_when_they_stopped() -> None:
    assert present.count(1234) == "1,234"
    assert present.count(10000, True) == "10,000+"


def test_an_error_line_names_the_exception_unless_cancelled() -> None:
    assert present.error_line({"name": "ValueError", "message": "bad\n  input"}) == (
        "ValueError: bad input"
    )
    assert present.error_line({"name": "JobCancelled", "message": "stop", "cancelled": True}) == (
        "stop"
    )
    assert present.error_line(None) == ""


def test_notes_point_at_what_matters_for_the_status() -> None:
    row: dict[str, Any] = {"wait_until": T0, "processing_until": T0, "error": None}
    assert present.note(row, "waiting") == present.Note("runs", T0)
    assert present.note(row, "processing") == present.Note("lease ends", T0)
    retrying = {"error": {"name": "OSError", "message": "x"}}
    assert present.note(retrying, "queued").text == "will retry · OSError: x"
    assert present.note({}, "completed").text == ""


def entry(slug: str, task_id: str, start: float, end: float, parent: Any = None) -> JobLogEntry:
    return JobLogEntry(
        id=f"{slug}-{task_id}-{start}",
        executed_at=T0 + timedelta(seconds=start),
        completed_at=T0 + timedelta(seconds=end),
        task_slug=slug,
        task_id=task_id,
        state="succeeded",
        parent=parent,
    )


def test_the_timeline_nests_steps_under_the_step_that_called_them() -> None:
    outer = entry("outer", "1", 0, 10)
    inner = entry("inner", "a", 2, 4, {"task_slug": "outer", "task_id": "1"})
    deeper = entry("deep", "x", 2.5, 3, {"task_slug": "inner", "task_id": "a"})
    later = entry("after", "2", 10, 12)
    # The log holds attempts in the order they finished.
    steps = present.timeline([deeper, inner, outer, later])
    assert [(s.entry.task_slug, s.depth) for s in steps] == [
        ("outer", 0),
        ("inner", 1),
        ("deep", 2),
        ("after", 0),
    ]
    assert (steps[0].left, steps[0].width) == (0, pytest.approx(83.33, abs=0.01))
    assert steps[1].offset == "2.0 s" and steps[1].took == "2.0 s"
    assert present.timeline([]) == []


def test_a_step_whose_parent_is_missing_is_shown_at_the_top() -> None:
    lost = entry("child", "c", 0, 1, {"task_slug": "gone", "task_id": "1"})
    assert [s.depth for s in present.timeline([lost])] == [0]


def test_steps_naming_each_other_as_parents_are_still_shown() -> None:
    a = entry("a", "1", 0, 2, {"task_slug": "b", "task_id": "1"})
    b = entry("b", "1", 1, 3, {"task_slug": "a", "task_id": "1"})
    assert [s.entry.task_slug for s in present.timeline([a, b])] == ["a", "b"]


def test_chart_bars_scale_to_the_busiest_minute() -> None:
    bars = present.chart([0, 4, 2], [0, 4, 0], T0)
    assert [b.done_h for b in bars] == [0, 48, 24]
    assert bars[1].fail_y == 0 and bars[1].fail_h == 48
    assert bars[1].title == "12:01 UTC · 4 completed · 4 failed"


def test_a_filter_reads_blank_fields_as_none_and_names_bad_ones() -> None:
    chosen = JobFilter.parse({"status": "failed", "queue": " mail ", "slug": "", "id": "7"})
    assert chosen == JobFilter(status="failed", queue="mail", id=7)
    assert chosen.query(before=3) == "?status=failed&queue=mail&id=7&before=3"
    assert chosen.describe() == "status failed, queue mail, id 7"
    assert JobFilter().describe() == "no filter" and JobFilter().query() == ""
    with pytest.raises(BadFilter, match="unknown status 'odd'"):
        JobFilter.parse({"status": "odd"})
    with pytest.raises(BadFilter, match="id must be a job id"):
        JobFilter.parse({"id": "0"})


def test_a_slug_filter_names_its_column_when_the_slug_is_known() -> None:
    registry = Registry([], [])
    assert JobFilter(slug="x").where(registry) == {"slug": "x"}
    assert JobFilter(slug="x").wheres(registry) == [{"task_slug": "x"}, {"workflow_slug": "x"}]
    assert JobFilter(queue="q").wheres(registry) == [{"queue": "q"}]


def logged(slug: str, task_id: str, output: Any) -> JobLogEntry:
    return entry(slug, task_id, 0, 1).model_copy(update={"output": output})


def test_signals_are_consumed_by_the_waits_and_children_that_took_them() -> None:
    log = [
        logged("wait_for_signal", "a", {"payload": {}, "signal": 1}),
        logged("wait_for_signal", "t", {"payload": None, "timeout": True}),
        logged("run_child:queued", "c", {"child": 7}),
        logged("run_child", "c", None),  # the child failed: ChildFailed, a failed step
        logged("run_child:queued", "c", {"child": 8}),  # the retry's child, still running
        logged("run_child", "other", {"child": 9}),  # no child queued under that step id
    ]
    rows = [
        {"id": n, "topic": topic, "payload": None, "created_at": T0}
        for n, topic in [(1, "go"), (2, "go"), (3, "run_child:7"), (4, "run_child:8")]
    ]
    shown = present.signals(rows, log)
    assert [s.consumed for s in shown] == [True, False, True, False]
    assert shown[0] == present.Signal("go", None, T0, True)
