"""Values stored as JSON behave alike on both backends, and a bad one fails the call that made it.

A task returning something JSON cannot hold must fail that task (retried like any failure), not
break the run or leave the job to be re-run forever; a workflow passing such an input to a step
fails where it made the call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel

import asyncjobs
from asyncjobs import json_values
from asyncjobs.json_values import MAX_BYTES, MAX_DEPTH
from tests.conftest import run_until_idle

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("plain")
async def plain() -> None:
    return None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"x": math.nan}, "JSON-serialisable"),
        ({"x": [1.0, -math.inf]}, "JSON-serialisable"),
        ({"x": "nul \x00 inside"}, "NUL character"),
        ({"key \x00": 1}, "NUL character"),
        ({"x": "lone \ud800 surrogate"}, "surrogate"),
        ({"x": ["\udc80", (1,)]}, "surrogate"),
    ],
)
async def test_values_postgresql_cannot_store_are_refused_on_both_backends(
    make_jobs: MakeJobs, value: dict[str, Any], problem: str
) -> None:
    jobs = make_jobs(tasks=[plain])
    with pytest.raises(asyncjobs.ValidationError, match=f"^input must .*{problem}"):
        await jobs.queue(task="plain", input=value)
    with pytest.raises(asyncjobs.ValidationError, match=f"^item 1: meta must .*{problem}"):
        await jobs.queue_many([{"task": "plain"}, {"task": "plain", "meta": value}])
    assert await jobs.find() == []


def nested(levels: int, *, kind: type = dict) -> Any:
    """A value whose lists or dicts nest ``levels`` deep, built without recursion."""
    value: Any = kind()
    for _ in range(levels - 1):
        value = {"a": value} if kind is dict else [value]
    return value


DEPTH_PROBLEM = f"deeper than {MAX_DEPTH} levels"


class Tree(BaseModel):
    tree: dict[str, Any]


@asyncjobs.task("schema", input_schema=Tree)
async def schema() -> None:
    return None


@pytest.mark.parametrize(
    ("value", "key"),
    [
        ({1: "a", "1": "b"}, "int key 1"),
        ({"x": [{"ok": 1, (1, 2): 3}]}, "tuple key (1, 2)"),
        ({"x": {None: 1}}, "NoneType key None"),
        ({"x": {10**5000: 1}}, "int key (too long to show)"),
    ],
)
async def test_a_key_that_is_not_a_string_is_refused_not_converted(
    make_jobs: MakeJobs, value: dict[Any, Any], key: str
) -> None:
    jobs = make_jobs(tasks=[plain])
    problem = f"must have string keys (JSON keys are strings), got the {key}"
    with pytest.raises(asyncjobs.ValidationError, match=re.escape(f"input {problem}")):
        await jobs.queue(task="plain", input=value)
    with pytest.raises(asyncjobs.ValidationError, match=re.escape(f"meta {problem}")):
        await jobs.queue(task="plain", meta=value)
    assert await jobs.find() == []


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 5_000, 50_000])
@pytest.mark.parametrize("kind", [dict, list])
async def test_a_value_nested_too_deep_is_refused_naming_the_limit(
    make_jobs: MakeJobs, levels: int, kind: type
) -> None:
    jobs = make_jobs(tasks=[plain, schema])
    deep = nested(levels, kind=kind)
    with pytest.raises(asyncjobs.ValidationError, match=f"^input must .*{DEPTH_PROBLEM}"):
        await jobs.queue(task="plain", input={"x": deep})
    with pytest.raises(asyncjobs.ValidationError, match=DEPTH_PROBLEM):
        await jobs.queue(task="schema", input={"tree": {"x": deep}})
    with pytest.raises(asyncjobs.ValidationError, match=f"^meta must .*{DEPTH_PROBLEM}"):
        await jobs.queue(task="plain", meta={"x": deep})
    assert await jobs.find() == []


async def test_a_value_at_the_depth_limit_is_stored(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[plain])
    job = await jobs.queue(task="plain", input=nested(MAX_DEPTH))
    stored = await jobs.get(job.id)
    assert stored is not None and stored.input == nested(MAX_DEPTH)


async def test_a_model_too_deep_to_dump_is_refused(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[schema])
    with pytest.raises(asyncjobs.ValidationError, match=r"^input cannot be stored as JSON"):
        await jobs.queue(task="schema", input=Tree(tree=nested(5_000)))
    assert await jobs.find() == []


SIZE_PROBLEM = f"must not be larger than {MAX_BYTES:,} bytes as JSON"


@pytest.mark.parametrize(
    "value",
    [
        {"text": "x" * MAX_BYTES},
        {"text": "\u00e9" * (MAX_BYTES // 2)},  # two bytes each in UTF-8
        {"numbers": [7] * (MAX_BYTES // 3)},  # "7, " each
        {"rows": [{"id": n, "name": "Ada"} for n in range(MAX_BYTES // 20)]},
        {"numbers": [0] * (10 * MAX_BYTES)},  # refused before its JSON is written
    ],
    ids=["string", "utf-8", "numbers", "records", "huge"],
)
async def test_a_value_larger_than_the_size_limit_is_refused_naming_it(
    make_jobs: MakeJobs, value: dict[str, Any]
) -> None:
    jobs = make_jobs(tasks=[plain])
    with pytest.raises(asyncjobs.ValidationError, match=f"^input {SIZE_PROBLEM}"):
        await jobs.queue(task="plain", input=value)
    with pytest.raises(asyncjobs.ValidationError, match=f"^meta {SIZE_PROBLEM}"):
        await jobs.queue(task="plain", meta=value)
    assert await jobs.find() == []


async def test_a_value_just_below_the_size_limit_is_stored(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[plain])
    value = {"text": "x" * (MAX_BYTES - len('{"text": ""}'))}
    job = await jobs.queue(task="plain", input=value)
    stored = await jobs.get(job.id)
    assert stored is not None and stored.input == value


async def test_the_size_limit_can_be_changed_at_startup(
    make_jobs: MakeJobs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(json_values, "MAX_BYTES", 100)
    jobs = make_jobs(tasks=[plain])
    with pytest.raises(asyncjobs.ValidationError, match="larger than 100 bytes"):
        await jobs.queue(task="plain", input={"text": "x" * 100})
    await jobs.queue(task="plain", input={"text": "x" * 80})


RETURNED: list[Any] = []


@asyncjobs.task("returns", retries=1)
async def returns() -> Any:
    return RETURNED[0]


@pytest.mark.parametrize(
    ("output", "problem"),
    [
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "datetime is not JSON serializable"),
        ({"ratio": math.nan}, "Out of range float values"),
        ({"text": "a\x00b"}, "NUL character"),
        ({"text": "a\ud800b"}, "surrogate"),
        ({"deep": nested(MAX_DEPTH)}, DEPTH_PROBLEM),
        ({"deep": nested(5_000, kind=list)}, DEPTH_PROBLEM),
        ({1: "one", "1": "uno"}, "must have string keys"),
        ({"big": "x" * MAX_BYTES}, SIZE_PROBLEM),
    ],
)
async def test_an_output_json_cannot_hold_fails_the_task(
    make_jobs: MakeJobs, output: dict[str, Any], problem: str
) -> None:
    RETURNED[:] = [output]
    jobs = make_jobs(tasks=[returns])
    job = await jobs.queue(task="returns")
    results = await run_until_idle(jobs)
    statuses = [r.job_status for r in results[:-1]]
    assert statuses == [{job.id: "error"}, {job.id: "error-reached-max-retries"}]
    stored = await jobs.get(job.id)
    assert stored is not None and stored.has_error and stored.status == "failed"
    assert stored.total_tried == 2
    assert [entry.state for entry in stored.log] == ["failed", "failed"]
    assert "output of task 'returns' must" in stored.log[0].error["message"]
    assert problem in stored.log[0].error["message"]


@asyncjobs.workflow("passes_time")
async def passes_time(*, tasks: Any) -> None:
    await tasks.plain("first")
    await tasks.plain("second", input={"when": datetime(2026, 1, 1, tzinfo=UTC)})


async def test_a_step_input_json_cannot_hold_fails_the_workflow_where_it_was_passed(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[plain], workflows=[passes_time])
    job = await jobs.queue(workflow="passes_time")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "failed"
    assert stored.error is not None
    assert stored.error["name"] == "ValidationError"
    assert "input of task 'plain' (second) must be JSON-serialisable" in stored.error["message"]
    assert [(e.task_id, e.state) for e in stored.log] == [("first", "succeeded")]


def test_an_escaped_backslash_before_u0000_is_not_a_nul() -> None:
    from asyncjobs.json_values import checked

    value = {"path": "C:\\u0000dir", "big": 1 << 70, "pair": "\U0001f389"}  # not plain
    assert checked(value, "input") is value


@asyncjobs.task("raises_odd_text")
async def raises_odd_text() -> None:
    raise ValueError("nul \x00 and a lone \ud800 surrogate")


async def test_a_failure_whose_message_json_cannot_hold_is_still_recorded(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[raises_odd_text])
    job = await jobs.queue(task="raises_odd_text")
    assert (await jobs.run()).job_status == {job.id: "error-reached-max-retries"}
    stored = await jobs.get(job.id)
    assert stored is not None and stored.status == "failed"
    message = stored.log[0].error["message"]
    assert message == "nul \ufffd and a lone ? surrogate"
    assert stored.error is not None and "\x00" not in stored.error.get("traceback", "")


def test_keys_of_a_str_subclass_are_strings() -> None:
    from asyncjobs.json_values import checked

    class Key(str):
        pass

    value = {Key("k"): [{Key("nested"): 1}]}
    assert checked(value, "input") is value
