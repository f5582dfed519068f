"""queue(), queue_many(), get(), find() and access checks, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import BaseModel

import asyncjobs
from tests.conftest import FakeClock


class EmailIn(BaseModel):
    to: str
    subject: str


@asyncjobs.task("send-email", input_schema=EmailIn)
async def send_email(*, input: EmailIn) -> dict:
    return {"sent": input.to}


@asyncjobs.task("plain")
async def plain(*, input: dict) -> None:
    return None


@asyncjobs.workflow("onboard", queue="onboarding")
async def onboard(*, input: dict, tasks: object) -> None:
    return None


MakeJobs = Callable[..., asyncjobs.Jobs]


def _jobs(make_jobs: MakeJobs, **options: object) -> asyncjobs.Jobs:
    return make_jobs(tasks=[send_email, plain], workflows=[onboard], **options)


async def test_queue_stores_a_job_with_defaults(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = _jobs(make_jobs)
    job = await jobs.queue(task="plain", input={"a": 1})
    assert job.status == "queued"
    assert (job.queue, job.task_slug, job.workflow_slug) == ("default", "plain", None)
    assert job.input == {"a": 1}
    assert job.meta == {}
    assert job.total_tried == 0
    assert job.log == []
    assert job.created_at == clock.now
    assert await jobs.get(job.id) == job


async def test_workflow_queue_defaults_to_the_workflows_queue(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    assert (await jobs.queue(workflow="onboard")).queue == "onboarding"
    assert (await jobs.queue(workflow=onboard, queue="other")).queue == "other"


async def test_invalid_input_names_the_field_and_stores_nothing(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.ValidationError, match="subject") as caught:
        await jobs.queue(task="send-email", input={"to": "a@b.c"})
    assert caught.value.errors[0]["loc"] == ("subject",)
    assert await jobs.find() == []


async def test_valid_input_is_stored_as_json(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    job = await jobs.queue(task="send-email", input=EmailIn(to="a@b.c", subject="hi"))
    assert job.input == {"to": "a@b.c", "subject": "hi"}


async def test_input_must_be_a_dict_without_schema(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.ValidationError, match="dict"):
        await jobs.queue(task="plain", input=[1, 2])
    with pytest.raises(asyncjobs.ValidationError, match="JSON"):
        await jobs.queue(task="plain", input={"when": object()})
    assert await jobs.find() == []


class Text(str):
    pass


def _circular() -> dict:
    loop: dict = {}
    loop["self"] = loop
    return loop


def _nested(depth: int) -> dict:
    value: dict = {}
    for _ in range(depth):
        value = {"v": [value]}
    return value


JSON_REFUSES = "be JSON-serialisable"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"s": {1, 2}}, JSON_REFUSES),
        ({"b": b"x"}, JSON_REFUSES),
        ({"o": object()}, JSON_REFUSES),
        ({"when": datetime(2030, 1, 1)}, JSON_REFUSES),
        ({"big": 10**5000}, JSON_REFUSES),
        ({"deep": [{"set": {3}}]}, JSON_REFUSES),
        ({(1, 2): "tuple key"}, "have string keys"),
        (_circular(), "not nest lists and dicts deeper than"),
    ],
)
async def test_input_and_meta_that_json_refuses_store_nothing(
    make_jobs: MakeJobs, value: dict, problem: str
) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.ValidationError, match=f"^input must {problem}"):
        await jobs.queue(task="plain", input=value)
    with pytest.raises(asyncjobs.ValidationError, match=f"^item 1: meta must {problem}"):
        await jobs.queue_many([{"task": "plain"}, {"task": "plain", "meta": value}])
    assert await jobs.find() == []


async def test_values_json_accepts_are_stored_as_json_reads_them(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    value = {
        "t": (1, "a"),
        "s": Text("sub"),
        "big": 2**70,
        "d": _nested(40),
    }
    job = await jobs.queue(task="plain", input=value, meta=value)
    expected = {
        "t": [1, "a"],
        "s": "sub",
        "big": 2**70,
        "d": _nested(40),
    }
    assert job.input == expected
    assert job.meta == expected


async def test_unknown_slug_is_not_registered(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.NotRegistered, match="nope"):
        await jobs.queue(task="nope")
    with pytest.raises(asyncjobs.NotRegistered, match="plain"):
        await jobs.queue(workflow="plain")


async def test_queue_needs_exactly_one_of_task_or_workflow(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(ValueError, match="exactly one"):
        await jobs.queue()
    with pytest.raises(ValueError, match="exactly one"):
        await jobs.queue(task="plain", workflow="onboard")


async def test_wait_until_must_be_aware(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(ValueError, match="timezone"):
        await jobs.queue(task="plain", wait_until=datetime(2030, 1, 1))
    job = await jobs.queue(task="plain", wait_until=clock.now + timedelta(minutes=5))
    assert job.status == "waiting"
    assert job.wait_until == clock.now + timedelta(minutes=5)


async def test_queue_many_is_all_or_nothing(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    good = {"task": "plain", "input": {"n": 1}}
    with pytest.raises(asyncjobs.ValidationError, match="item 1"):
        await jobs.queue_many([good, {"task": "send-email", "input": {}}, good])
    with pytest.raises(ValueError, match="unknown queue"):
        await jobs.queue_many([{"task": "plain", "prio": 3}])
    assert await jobs.find() == []
    created = await jobs.queue_many([good, {"workflow": "onboard", "meta": {"k": "v"}}])
    assert [j.slug for j in created] == ["plain", "onboard"]
    assert created[1].meta == {"k": "v"}
    assert len({j.id for j in created}) == 2


async def test_find_filters_and_orders(make_jobs: MakeJobs, clock: FakeClock) -> None:
    jobs = _jobs(make_jobs)
    first = await jobs.queue(task="plain", input={"user": "ann", "n": 1})
    clock.advance(1)
    second = await jobs.queue(task="plain", input={"user": "bob", "n": 2}, queue="q2")
    clock.advance(1)
    third = await jobs.queue(workflow="onboard", wait_until=clock.now + timedelta(hours=1))
    assert [j.id for j in await jobs.find()] == [third.id, second.id, first.id]
    assert [j.id for j in await jobs.find(order="created_at", limit=2)] == [first.id, second.id]
    assert [j.id for j in await jobs.find(where={"input.user": "bob"})] == [second.id]
    assert [j.id for j in await jobs.find(where={"input.n": 1})] == [first.id]
    assert [j.id for j in await jobs.find(where={"queue": "q2"})] == [second.id]
    assert [j.id for j in await jobs.find(where={"workflow_slug": "onboard"})] == [third.id]
    assert [j.id for j in await jobs.find(where={"status": "waiting"})] == [third.id]
    assert len(await jobs.find(where={"status": "queued"})) == 2
    assert await jobs.find(where={"status": "completed"}) == []


async def test_find_rejects_unknown_filters(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(ValueError, match="attempts"):
        await jobs.find(where={"attempts": 1})
    with pytest.raises(ValueError, match="status"):
        await jobs.find(where={"status": "sleeping"})
    with pytest.raises(ValueError, match="limit"):
        await jobs.find(limit=0)


async def test_get_missing_job_is_none(make_jobs: MakeJobs) -> None:
    assert await _jobs(make_jobs).get(12345) is None


async def test_access_refused_changes_nothing(make_jobs: MakeJobs) -> None:
    seen: list[object] = []

    def allow_admins(request: dict) -> bool:
        seen.append(request)
        return request.get("admin", False)

    async def async_allow(request: dict) -> bool:
        return request.get("admin", False)

    access = asyncjobs.Access(queue=allow_admins, run=async_allow, cancel=allow_admins)
    jobs = _jobs(make_jobs, access=access)
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.queue(task="plain", override_access=False, request={"admin": False})
    assert await jobs.find() == []
    job = await jobs.queue(task="plain", override_access=False, request={"admin": True})
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.run(override_access=False, request={})
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.cancel_by_id(job.id, override_access=False, request={})
    assert (await jobs.get(job.id)).status == "queued"  # type: ignore[union-attr]
    assert seen


@pytest.mark.parametrize("answer", ["false", 1, {"allowed": False}])
async def test_an_access_answer_other_than_true_refuses(
    make_jobs: MakeJobs, answer: object
) -> None:
    def check() -> object:
        return answer

    access = asyncjobs.Access(queue=check, run=check, cancel=check)
    jobs = _jobs(make_jobs, access=access)
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.queue(task="plain", override_access=False)
    job = await jobs.queue(task="plain")
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.run(override_access=False)
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.cancel_by_id(job.id, override_access=False)
    assert [j.status for j in await jobs.find()] == ["queued"]


async def test_without_access_configured_checked_calls_are_refused(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.queue(task="plain", override_access=False)
    with pytest.raises(asyncjobs.Forbidden):
        await jobs.run_by_id(1, override_access=False)


async def test_names_longer_than_the_columns_are_refused_on_both_backends(
    make_jobs: MakeJobs,
) -> None:
    keyed = asyncjobs.Task("keyed", plain.handler, concurrency=lambda input: "k" * input["length"])
    jobs = make_jobs(tasks=[plain, keyed])
    with pytest.raises(ValueError, match="queue is 201 characters long; the limit is 200"):
        await jobs.queue(task="plain", queue="q" * 201)
    with pytest.raises(ValueError, match="concurrency key of 'keyed' is 501 characters long"):
        await jobs.queue(task="keyed", input={"length": 501})
    assert await jobs.find() == []
    await jobs.queue(task="plain", queue="q" * 200)
    await jobs.queue(task="keyed", input={"length": 500})
    assert len(await jobs.find()) == 2


def test_definitions_with_names_longer_than_the_columns_are_refused() -> None:
    with pytest.raises(ValueError, match="task slug is 201 characters long"):
        asyncjobs.Task("t" * 201, plain.handler)
    with pytest.raises(ValueError, match="queue is 201 characters long"):
        asyncjobs.Workflow("w", plain.handler, queue="q" * 201)
    with pytest.raises(ValueError, match="queue is 201 characters long"):
        asyncjobs.Schedule("* * * * *", queue="q" * 201)


NUL = "must not contain the NUL character"
SURROGATE = "must not contain an unpaired surrogate"


@pytest.mark.parametrize(("name", "problem"), [("a\x00b", NUL), ("\ud800", SURROGATE)])
async def test_names_postgresql_cannot_store_are_refused_on_both_backends(
    make_jobs: MakeJobs, name: str, problem: str
) -> None:
    keyed = asyncjobs.Task("keyed", plain.handler, concurrency=lambda input: input["key"])
    jobs = make_jobs(tasks=[plain, keyed])
    with pytest.raises(ValueError, match=f"^queue {problem}"):
        await jobs.queue(task="plain", queue=name)
    with pytest.raises(ValueError, match=f"^item 1: queue {problem}"):
        await jobs.queue_many([{"task": "plain"}, {"task": "plain", "queue": name}])
    with pytest.raises(ValueError, match=f"^the concurrency key of 'keyed' {problem}"):
        await jobs.queue(task="keyed", input={"key": name})
    assert await jobs.find() == []
    with pytest.raises(ValueError, match=f"^queue {problem}"):
        await jobs.run(queue=name)
    with pytest.raises(ValueError, match=f"^queue {problem}"):
        await jobs.cancel(queue=name)


@pytest.mark.parametrize(("name", "problem"), [("a\x00b", NUL), ("\udfff", SURROGATE)])
def test_definitions_with_names_postgresql_cannot_store_are_refused(
    name: str, problem: str
) -> None:
    with pytest.raises(ValueError, match=f"^task slug {problem}"):
        asyncjobs.Task(name, plain.handler)
    with pytest.raises(ValueError, match=f"^queue {problem}"):
        asyncjobs.Workflow("w", plain.handler, queue=name)
    with pytest.raises(ValueError, match=f"^queue {problem}"):
        asyncjobs.Schedule("* * * * *", queue=name)


async def test_queue_returns_each_job_as_it_reads_back(make_jobs: MakeJobs) -> None:
    jobs = _jobs(make_jobs)
    later = datetime(2030, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    value = {"zz": 1e100, "a": 1.5, "m": {"y": [1, 2.0], "b": True}}
    items = [{"task": "plain", "input": {**value, "n": n}, "wait_until": later} for n in range(3)]
    created = await jobs.queue_many([*items, {"task": "plain", "meta": {"k": "v"}}])
    assert created == [await jobs.get(job.id) for job in created]
    assert created[0].wait_until is not None and created[0].wait_until.tzinfo is UTC
