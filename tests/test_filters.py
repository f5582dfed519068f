"""``where`` filters: typed, literal and alike on both backends; a bad one changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import asyncjobs

MakeJobs = Callable[..., asyncjobs.Jobs]


@asyncjobs.task("plain")
async def plain() -> None:
    return None


async def queue_inputs(jobs: asyncjobs.Jobs, *inputs: dict[str, Any]) -> list[int]:
    return [(await jobs.queue(task="plain", input=value)).id for value in inputs]


async def found(jobs: asyncjobs.Jobs, where: dict[str, Any]) -> list[int]:
    return [job.id for job in await jobs.find(where=where, order="id")]


USERS: list[Any] = [42, 42.0, "42", True, False, None, [42], {"id": 42}, "x", 0, 1]


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        (42, [0, 1]),
        (42.0, [0, 1]),
        ("42", [2]),
        (True, [3]),
        (False, [4]),
        ("x", [8]),
        (0, [9]),
        (1, [10]),
        (-3.5, []),
    ],
)
async def test_an_input_filter_matches_only_values_of_its_json_type(
    make_jobs: MakeJobs, value: Any, matches: list[int]
) -> None:
    jobs = make_jobs(tasks=[plain])
    ids = await queue_inputs(jobs, *({"user": user} for user in USERS), {"other": value})
    assert await found(jobs, {"input.user": value}) == [ids[index] for index in matches]


async def test_run_and_cancel_with_a_typed_filter_skip_rows_of_another_type(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[plain])
    text, number, other = await queue_inputs(jobs, {"user": "x"}, {"user": 7}, {"user": 8})
    result = await jobs.run(where={"input.user": 7})
    assert result.job_status == {number: "success"}
    assert await jobs.cancel(where={"input.user": 8.0}) == 1
    statuses = {job.id: job.status for job in await jobs.find()}
    assert statuses == {text: "queued", number: "completed", other: "cancelled"}


@pytest.mark.parametrize("value", [2**31, 2**40 + 1, 2**63 - 1, -(2**63)])
async def test_integers_beyond_32_bits_are_matched_exactly(make_jobs: MakeJobs, value: int) -> None:
    jobs = make_jobs(tasks=[plain])
    ids = await queue_inputs(jobs, {"n": value}, {"n": value ^ 1}, {"n": str(value)}, {"n": 2**70})
    assert await found(jobs, {"input.n": value}) == [ids[0]]


@pytest.mark.parametrize("key", ['a"."b', "a.b", "a'b", "$.a", "a[0]", "*", "é ü", " "])
async def test_an_input_key_is_one_literal_top_level_key(make_jobs: MakeJobs, key: str) -> None:
    jobs = make_jobs(tasks=[plain])
    nested, literal = await queue_inputs(
        jobs, {"a": {"b": 1, "0": 1}, "$": {"a": 1}, "": 2}, {key: 1}
    )
    assert await found(jobs, {f"input.{key}": 1}) == [literal]
    assert nested
