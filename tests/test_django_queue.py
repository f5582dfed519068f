"""queue() / aqueue() of the Django integration: jobs in Django's own transaction, on SQLite and
PostgreSQL, from plain code, nested atomic blocks, and sync and async views."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import transaction
from django.test import AsyncClient, Client, override_settings

import asyncjobs
import tests.django_site
from asyncjobs.integrations.django import aqueue, bridge, queue
from tests.django_site import BACKENDS, Site, make_jobs, open_site

ELSEWHERE = make_jobs("sqlite:///somewhere-else.db")


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    with open_site(request.param, request.config) as opened:
        yield opened


@pytest.fixture
def woken(site: Site) -> Iterator[list[int]]:
    """Ids of the jobs announced to the queue listeners (which wake autoRun)."""
    ids: list[int] = []
    publish = site.jobs.wake.publish_jobs

    def recording(created: Any) -> None:
        created = list(created)
        ids.extend(job.id for job in created)
        publish(created)

    site.jobs.wake.publish_jobs = recording  # type: ignore[method-assign]
    yield ids
    del site.jobs.wake.publish_jobs  # the bus's own method again


def settled(site: Site) -> None:
    """Let the wake-ups sent to the jobs' loop run (they come before this call)."""
    site.call(asyncio.sleep, 0)


def orders(site: Site) -> Any:
    from integrations.django.models import Order  # once Django is set up

    return Order.objects.using(site.alias)


def stored(site: Site) -> list[int]:
    return sorted(job.id for job in site.call(site.jobs.find))


def test_a_job_queued_in_atomic_exists_only_after_the_commit(site: Site, woken: list[int]) -> None:
    with transaction.atomic(using=site.alias):
        job = queue(task="plain", input={"n": 1}, using=site.alias)
        assert (job.task_slug, job.input, job.status) == ("plain", {"n": 1}, "queued")
        assert stored(site) == []
        if site.backend == "postgres":  # a SQLite runner would wait for this write lock
            assert site.run().job_status == {}
        settled(site)
        assert woken == []
    settled(site)
    assert woken == [job.id] and stored(site) == [job.id]
    assert site.run().job_status == {job.id: "success"}


def test_a_rolled_back_atomic_block_leaves_no_job_and_wakes_nothing(
    site: Site, woken: list[int]
) -> None:
    with pytest.raises(RuntimeError), transaction.atomic(using=site.alias):
        queue(task="plain", using=site.alias)
        raise RuntimeError("rolled back")
    settled(site)
    assert stored(site) == [] and woken == []


def test_a_job_in_a_rolled_back_savepoint_does_not_exist(site: Site, woken: list[int]) -> None:
    with transaction.atomic(using=site.alias):
        outer = queue(task="plain", input={"n": "outer"}, using=site.alias)
        with pytest.raises(RuntimeError), transaction.atomic(using=site.alias):
            queue(task="plain", input={"n": "inner"}, using=site.alias)
            raise RuntimeError("the savepoint rolls back")
        kept = queue(task="plain", input={"n": "after"}, using=site.alias)
    settled(site)
    assert stored(site) == [outer.id, kept.id]
    assert sorted(woken) == [outer.id, kept.id]


def test_outside_atomic_the_job_commits_at_once(site: Site, woken: list[int]) -> None:
    job = queue(task="plain", using=site.alias)
    settled(site)
    assert stored(site) == [job.id] and woken == [job.id]


def test_a_priority_is_stored_and_a_bad_one_stores_nothing(site: Site) -> None:
    with transaction.atomic(using=site.alias):
        job = queue(task="plain", priority=-20, using=site.alias)
    with pytest.raises(asyncjobs.ValidationError, match="priority"):
        queue(task="plain", priority=101, using=site.alias)
    assert job.priority == -20 and site.job(job.id).priority == -20
    assert stored(site) == [job.id]


def test_bad_input_stores_nothing(site: Site) -> None:
    with pytest.raises(asyncjobs.NotRegistered):
        queue(task="nope", using=site.alias)
    with pytest.raises(ValueError, match="unknown queue\\(\\) argument\\(s\\): connection"):
        queue(task="plain", connection=None, using=site.alias)
    with pytest.raises(asyncjobs.ValidationError):
        queue(task="plain", input=[1], using=site.alias)
    assert stored(site) == []


def test_superseding_applies_in_djangos_transaction(site: Site) -> None:
    task = asyncjobs.Task(
        "doc",
        tests.django_site.plain,
        concurrency=asyncjobs.Concurrency(lambda input: input["doc"], supersedes=True),
    )
    jobs = make_jobs(site.jobs.database_url, tasks=[task])
    try:
        first = queue(task="doc", input={"doc": "a"}, using=site.alias, jobs=jobs)
        with transaction.atomic(using=site.alias):
            newest = queue(task="doc", input={"doc": "a"}, using=site.alias, jobs=jobs)
        ids = [j.id for j in bridge.call(jobs, jobs.find)]
    finally:
        bridge.release(jobs)
    assert ids == [newest.id] and newest.id != first.id


def test_another_database_is_refused_naming_both(site: Site) -> None:
    with pytest.raises(ValueError, match="'default' database, but the database of Jobs"):
        queue(task="plain", jobs=ELSEWHERE)
    other = "postgres" if site.alias == "default" else "default"
    with pytest.raises(ValueError, match=f"is Django's '{site.alias}'"):
        queue(task="plain", using=other)


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_view_commits_its_order_and_job_together(site: Site, view: str) -> None:
    client = Client() if view == "sync" else None
    with override_settings(ROOT_URLCONF="tests.django_views"):
        if client is not None:
            answer = client.get("/sync", {"using": site.alias})
        else:
            answer = asyncio.run(AsyncClient().get("/async", {"using": site.alias}))
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert stored(site) == [body["job"]]
    assert orders(site).filter(pk=body["order"]).exists()
    assert site.job(body["job"]).input == {"order": body["order"]}


@pytest.mark.parametrize("view", ["sync", "async"])
def test_a_failing_view_leaves_neither_order_nor_job(site: Site, view: str) -> None:
    params = {"using": site.alias, "fail": "1"}
    with override_settings(ROOT_URLCONF="tests.django_views"):
        if view == "sync":
            answer = Client(raise_request_exception=False).get("/sync", params)
        else:
            client = AsyncClient(raise_request_exception=False)
            answer = asyncio.run(client.get("/async", params))
    assert answer.status_code == 500
    assert stored(site) == [] and not orders(site).exists()


def test_aqueue_in_an_async_view_stores_the_job(site: Site, woken: list[int]) -> None:
    with override_settings(ROOT_URLCONF="tests.django_views"):
        answer = asyncio.run(AsyncClient().get("/aqueue", {"using": site.alias}))
    assert answer.status_code == 200, answer.content
    settled(site)
    assert stored(site) == [answer.json()["job"]] == woken


async def test_aqueue_is_the_async_form(site: Site) -> None:
    job = await aqueue(task="plain", input={"a": 1}, using=site.alias)
    assert job.input == {"a": 1}
    assert [j.id for j in await bridge.acall(site.jobs, site.jobs.find)] == [job.id]


def test_a_held_idempotency_key_returns_its_job_and_a_rollback_frees_it(site: Site) -> None:
    with pytest.raises(RuntimeError), transaction.atomic(using=site.alias):
        queue(task="plain", idempotency_key="k", using=site.alias)
        raise RuntimeError("rolled back")
    first = queue(task="plain", input={"n": 1}, idempotency_key="k", using=site.alias)
    with transaction.atomic(using=site.alias):
        again = queue(task="plain", input={"n": 2}, idempotency_key="k", using=site.alias)
    assert (again.id, again.input, again.idempotency_key) == (first.id, {"n": 1}, "k")
    assert again.created_at == first.created_at and again.status == "queued"
    assert stored(site) == [first.id]
