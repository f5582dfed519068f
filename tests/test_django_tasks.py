"""django.tasks through TasksBackend: enqueue, run, results, signals, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django.utils import timezone

from asyncjobs.integrations.django.results import exception_path
from asyncjobs.integrations.django.tasks_api import (
    InvalidTask,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
    task_finished,
    task_started,
)
from tests import django_work as work
from tests.django_site import BACKENDS, Site, make_jobs, open_site

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED
NO_RUNNER = make_jobs("sqlite:///unused.db", workflows=[])


@pytest.fixture(params=BACKENDS)
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    with open_site(request.param, request.config) as opened:
        yield opened


@pytest.fixture
def signals() -> Iterator[list[tuple[str, str, str]]]:
    """(signal, task name, status) for every task signal sent."""
    sent: list[tuple[str, str, str]] = []
    pairs = [("enqueued", task_enqueued), ("started", task_started), ("finished", task_finished)]
    receivers = []
    for name, signal in pairs:

        def receiver(sender: Any, task_result: Any, _name: str = name, **kwargs: Any) -> None:
            sent.append((_name, task_result.task.name, str(task_result.status)))

        signal.connect(receiver, weak=False)
        receivers.append((signal, receiver))
    yield sent
    for signal, receiver in receivers:
        signal.disconnect(receiver)


def test_backend_supports_everything_django_asks_about() -> None:
    backend = task_backends["default"]
    flags = ("supports_defer", "supports_async_task", "supports_get_result", "supports_priority")
    assert [getattr(backend, flag) for flag in flags] == [True] * 4


def test_an_enqueued_task_is_a_queued_job(site: Site, signals: list[Any]) -> None:
    result = work.add.enqueue(2, b=3)
    assert (result.status, result.args, result.kwargs, result.backend) == (
        READY,
        [2],
        {"b": 3},
        "default",
    )
    job = site.job(result.id)
    assert result.id == str(job.id) and result.enqueued_at == job.created_at
    assert (job.workflow_slug, job.queue, job.status) == ("django-task", "default", "queued")
    assert job.input["task"] == "tests.django_work.add"
    assert signals == [("enqueued", "add", "READY")]


def test_a_run_task_has_its_result_and_sends_its_signals(site: Site, signals: list[Any]) -> None:
    result = work.add.enqueue(2, 3)
    assert site.run().job_status == {int(result.id): "success"}
    done = work.add.get_result(result.id)
    assert (done.status, done.return_value, done.attempts, done.errors) == (SUCCESSFUL, 5, 1, [])
    assert done.started_at is not None and done.finished_at is not None
    assert done.last_attempted_at == done.started_at
    result.refresh()
    assert result.status == SUCCESSFUL and result.return_value == 5
    assert signals == [
        ("enqueued", "add", "READY"),
        ("started", "add", "RUNNING"),
        ("finished", "add", "SUCCESSFUL"),
    ]


def test_a_failing_task_is_retried_then_failed(site: Site, signals: list[Any]) -> None:
    result = work.refuse.enqueue("no stock")
    site.run()
    retried = work.refuse.get_result(result.id)
    assert (retried.status, len(retried.errors), retried.attempts) == (READY, 1, 1)
    site.run()
    failed = work.refuse.get_result(result.id)
    assert (failed.status, len(failed.errors), failed.attempts) == (FAILED, 2, 2)
    assert failed.errors[0].exception_class is work.Refused
    assert "no stock" in failed.errors[-1].traceback
    with pytest.raises(ValueError, match="failed"):
        _ = failed.return_value
    finished = [s for s in signals if s[0] == "finished"]
    assert finished == [("finished", "refuse", "FAILED")]  # once, when no retry is left


def test_async_task_runs_on_its_queue(site: Site) -> None:
    result = work.shout.enqueue("hi")
    assert site.job(result.id).queue == "emails"
    site.call(site.jobs.run, queue="emails")
    assert work.shout.get_result(result.id).return_value == {"text": "HI"}


def test_task_taking_context_sees_its_attempt(site: Site) -> None:
    result = work.attempt.enqueue()
    site.run()
    assert work.attempt.get_result(result.id).return_value == 1


def test_run_after_waits_until_then(site: Site) -> None:
    later = timezone.now() + timedelta(hours=1)
    result = work.add.using(run_after=later).enqueue(1)
    job = site.job(result.id)
    assert (job.wait_until, job.status) == (later, "waiting")
    assert site.run().no_jobs_remaining
    fetched = work.add.get_result(result.id)
    assert fetched.status == READY and fetched.task.run_after == later


def test_priority_is_kept_with_the_job(site: Site) -> None:
    result = work.add.using(priority=7).enqueue(1)
    job = site.job(result.id)
    assert (job.priority, job.meta) == (7, {"keep_on_complete": True})
    assert work.add.get_result(result.id).task.priority == 7
    with pytest.raises(InvalidTask, match="priority"):
        work.add.using(priority=101)


def test_a_task_enqueued_by_a_running_task_is_queued_too(site: Site) -> None:
    first = work.enqueue_another.enqueue(4)
    site.run()
    second_id = work.enqueue_another.get_result(first.id).return_value
    site.run()
    assert work.add.get_result(second_id).return_value == 5


@pytest.mark.parametrize("result_id", ["999999", "abc", "9" * 30, ""])
def test_unknown_result_id_does_not_exist(site: Site, result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        work.add.get_result(result_id)


def test_a_job_of_another_task_is_no_task_result(site: Site) -> None:
    job = site.call(site.jobs.queue, task="plain")
    with pytest.raises(TaskResultDoesNotExist):
        work.add.get_result(str(job.id))


def test_a_queue_the_backend_does_not_list_is_refused(site: Site) -> None:
    with pytest.raises(InvalidTask, match="Queue 'other'"):
        work.add.using(queue_name="other")


def test_jobs_without_the_runner_task_refuse_and_store_nothing(site: Site) -> None:
    tasks = {"default": {"BACKEND": "asyncjobs.integrations.django.TasksBackend",
                         "OPTIONS": {"JOBS": "tests.test_django_tasks:NO_RUNNER"}}}  # fmt: skip
    with override_settings(TASKS=tasks), pytest.raises(ImproperlyConfigured, match="task_runner"):
        work.add.enqueue(1)
    assert site.call(site.jobs.find) == []
    assert not NO_RUNNER.store.is_open  # refused before its database was opened


@pytest.mark.parametrize(
    ("jobs", "ids"),
    [
        ("tests.test_django_tasks:NO_RUNNER", ["asyncjobs.E002"]),
        ("tests.django_site:sqlite_jobs", []),
        ("tests.django_site:nothing", ["asyncjobs.E001"]),
    ],
)
def test_check_names_what_the_backend_needs(jobs: str, ids: list[str]) -> None:
    backend_class = type(task_backends["default"])
    backend = backend_class("checked", {"OPTIONS": {"JOBS": jobs}})
    assert [message.id for message in backend.check()] == ids


async def test_async_views_enqueue_and_read_results(site: Site) -> None:
    result = await work.add.aenqueue(20, 1)
    assert result.status == READY
    fetched = await work.add.aget_result(result.id)
    assert fetched.status == READY and fetched.args == [20, 1]
    with pytest.raises(RuntimeError, match="async"):
        work.add.get_result(result.id)  # the sync API, called on a running loop


@pytest.mark.parametrize(
    ("error", "path"),
    [
        ({"name": "ValueError", "traceback": "Traceback...\nValueError: x"}, "builtins.ValueError"),
        ({"name": "Refused", "traceback": "...\ntests.x.Refused: no"}, "tests.x.Refused"),
        ({"name": "Odd", "traceback": ""}, "Odd"),
        ({"cancelled": True, "message": "cancelled"}, "asyncjobs.errors.JobCancelled"),
    ],
)  # fmt: skip
def test_exception_path_names_the_class(error: dict[str, Any], path: str) -> None:
    assert exception_path(error) == path


def test_an_enqueue_inside_atomic_commits_and_rolls_back_with_it(site: Site) -> None:
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic(using=site.alias):
        work.add.enqueue(1, 2)
        raise RuntimeError("the view failed")
    with transaction.atomic(using=site.alias):
        kept = work.add.enqueue(3, 4)
    # (SQLite may give the kept job the rolled-back one's id: compare what is stored.)
    stored = [(job.id, job.input["args"]) for job in site.call(site.jobs.find)]
    assert stored == [(int(kept.id), [3, 4])]


def test_a_completed_task_is_kept_while_other_completed_jobs_are_deleted(site: Site) -> None:
    assert site.jobs.delete_job_on_complete  # the site's Jobs deletes completed jobs
    result = work.add.enqueue(2, 3)
    plain = site.call(site.jobs.queue, task="plain")
    assert site.run().job_status == {int(result.id): "success", plain.id: "success"}
    kept = site.job(result.id)
    assert (kept.status, kept.output) == ("completed", {"return_value": 5})
    assert site.call(site.jobs.get, plain.id) is None
    assert work.add.get_result(result.id).return_value == 5
