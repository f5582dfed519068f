"""``where`` filters: typed, literal and alike on both backends; a bad one changes nothing."""

from __future__ import annotations

import math
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


BAD_WHERE: list[tuple[Any, str]] = [
    ({1: "x"}, "where keys must be strings, got 1"),
    ({"id": 2**64}, r"where\['id'\] must fit in 64 bits"),
    ({"id": "5"}, r"where\['id'\] must be an int"),
    ({"id": True}, r"where\['id'\] must be an int"),
    ({"queue": "a\x00"}, r"where\['queue'\] must not contain the NUL"),
    ({"task_slug": "\ud800"}, r"where\['task_slug'\] must not contain an unpaired surrogate"),
    ({"queue": 5}, r"where\['queue'\] must be a str"),
    ({"input.k": "a\x00b"}, r"where\['input.k'\] must not contain the NUL"),
    ({"input.k": "\udc80"}, r"where\['input.k'\] must not contain an unpaired surrogate"),
    ({"input.k\x00": 1}, "where key must not contain the NUL"),
    ({"input.k": 2**64}, r"where\['input.k'\] must fit in 64 bits"),
    ({"input.k": math.nan}, "finite float"),
    ({"input.k": None}, "takes a str, int, finite float or bool"),
    ({"input.k": [1]}, "takes a str, int, finite float or bool"),
    ({"status": ["queued"]}, "unknown job status"),
    ({"input": 1}, "cannot filter jobs on 'input'"),
]


@pytest.mark.parametrize(("where", "problem"), BAD_WHERE)
async def test_a_bad_where_is_refused_naming_it_and_changes_nothing(
    make_jobs: MakeJobs, where: Any, problem: str
) -> None:
    jobs = make_jobs(tasks=[plain])
    (job_id,) = await queue_inputs(jobs, {"k": 1})
    with pytest.raises(ValueError, match=problem):
        await jobs.find(where=where)
    with pytest.raises(ValueError, match=problem):
        await jobs.run(where=where)
    with pytest.raises(ValueError, match=problem):
        await jobs.cancel(where=where)
    stored = await jobs.get(job_id)
    assert stored is not None and stored.status == "queued" and stored.total_tried == 0


@pytest.mark.parametrize("job_id", [2**63, -(2**63) - 1, 10**30])
async def test_an_id_beyond_64_bits_is_refused_naming_it(make_jobs: MakeJobs, job_id: int) -> None:
    jobs = make_jobs(tasks=[plain])
    (queued,) = await queue_inputs(jobs, {})
    calls = (jobs.get, jobs.run_by_id, jobs.cancel_by_id, jobs.retry_by_id)
    for call in calls:
        with pytest.raises(ValueError, match="job id must fit in 64 bits"):
            await call(job_id)
    stored = await jobs.get(queued)
    assert stored is not None and stored.status == "queued"


async def test_the_largest_64_bit_id_is_simply_missing(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[plain])
    assert await jobs.get(2**63 - 1) is None
    assert await jobs.find(where={"id": 2**63 - 1}) == []


async def test_an_id_or_a_where_of_the_wrong_type_is_refused(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[plain])
    with pytest.raises(ValueError, match="job id must be an int, got 'seven'"):
        await jobs.get("seven")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="where must be a dict, got 'queue=default'"):
        await jobs.find(where="queue=default")  # type: ignore[arg-type]
