"""asyncjobs' options of one Django task (retries, backoff, concurrency and idempotency keys),
over task_runner's; on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from asyncjobs import Backoff, Concurrency
from asyncjobs.integrations.django import options, task_runner
from asyncjobs.integrations.django.task_options import (
    ATTRIBUTE,
    TaskOptions,
    options_of,
    queue_extras,
)
from asyncjobs.integrations.django.tasks_api import TaskResultStatus
from tests import django_work as work
from tests.django_site import BACKENDS, Site, open_site

READY, FAILED = TaskResultStatus.READY, TaskResultStatus.FAILED


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    with open_site(request.param, request.config) as opened:
        yield opened


def test_a_task_without_retries_fails_at_its_first_try(site: Site) -> None:
    result = work.refuse_once.enqueue("no")  # task_runner(retries=1) would retry it once
    site.run()
    failed = work.refuse_once.get_result(result.id)
    assert (failed.status, failed.attempts) == (FAILED, 1)


def test_a_retry_waits_for_the_tasks_own_backoff(site: Site) -> None:
    result = work.refuse_later.enqueue("later")
    site.run()
    job = site.job(result.id)
    assert (job.status, job.total_tried) == ("waiting", 1)
    assert job.wait_until == job.log[-1].completed_at + timedelta(seconds=60)
    assert work.refuse_later.get_result(result.id).status == READY


def test_calls_with_the_same_concurrency_key_do_not_run_at_once(site: Site) -> None:
    first, same, other = (
        work.confirm.enqueue(1),
        work.confirm.enqueue(1, note="x"),
        work.confirm.enqueue(2),
    )
    keys = [site.job(r.id).concurrency_key for r in (first, same, other)]
    assert keys == ["order-1", "order-1", "order-2"]
    assert sorted(site.run().job_status) == [int(first.id), int(other.id)]
    assert sorted(site.run().job_status) == [int(same.id)]


def test_a_task_without_options_has_no_key(site: Site) -> None:
    assert site.job(work.add.enqueue(1).id).concurrency_key is None


def test_an_unfinished_call_with_the_same_idempotency_key_is_returned(site: Site) -> None:
    first = work.mail.enqueue(3)
    assert work.mail.enqueue(3).id == first.id != work.mail.enqueue(4).id
    assert site.job(first.id).concurrency_key == "one-at-a-time"


def test_options_add_the_idempotency_key_to_the_queue_call() -> None:
    assert queue_extras(work.mail, [3], {}) == {"idempotency_key": "mail-3"}
    assert queue_extras(work.add, [3], {}) == {}


async def test_task_runners_key_applies_to_tasks_without_their_own() -> None:
    runner = task_runner(concurrency=Concurrency(lambda queue: f"q-{queue}", supersedes=True))
    assert runner.concurrency is not None and runner.concurrency.supersedes
    key = runner.concurrency.key

    def call(path: str, *args: Any) -> dict[str, Any]:
        return {"task": f"tests.django_work.{path}", "args": list(args), "kwargs": {}}

    assert await key(input=call("add", 1), queue="default") == "q-default"
    assert await key(input=call("confirm", 7), queue="default") == "order-7"
    assert await key(input=call("nothing-here"), queue="default") == "q-default"
    assert await task_runner().concurrency.key(input=call("add"), queue="x") is None  # type: ignore[union-attr]


def test_options_merge_retries_and_backoff() -> None:
    declared = options_of(work.refuse_later)
    assert declared.retries is not None and declared.retries.attempts == 2
    assert declared.retries.backoff == Backoff(delay=60)
    only_backoff = options(backoff=Backoff(delay=1))(lambda: None)
    assert options_of(work.add) == TaskOptions()
    assert getattr(only_backoff, ATTRIBUTE).retries.attempts is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"retries": "3"}, "retries must be an int or Retries"),
        ({"backoff": 5}, "backoff must be a Backoff"),
        ({"concurrency": ""}, "concurrency must be a non-empty str or a function"),
        ({"idempotency_key": 5}, "idempotency_key must be a non-empty str or a function"),
    ],
)
def test_a_bad_option_is_refused_at_once(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(TypeError, match=message):
        options(**kwargs)


def test_options_decorate_only_functions() -> None:
    with pytest.raises(TypeError, match="decorates a function or a Django task"):
        options(retries=1)(5)
