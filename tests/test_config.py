"""Definitions are immutable and validated when created."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel

import asyncjobs
from asyncjobs.retry import merge_retries


async def noop(*, input: dict) -> None:
    return None


def test_task_decorator_builds_a_task() -> None:
    @asyncjobs.task("hello", retries=2, label="Hello")
    async def hello(*, input: dict) -> dict:
        return {}

    assert isinstance(hello, asyncjobs.Task)
    assert hello.slug == "hello"
    assert hello.retries == asyncjobs.Retries(attempts=2)
    assert hello.label == "Hello"


def test_definitions_are_immutable() -> None:
    task = asyncjobs.Task("t", noop)
    with pytest.raises(AttributeError):
        task.slug = "other"  # type: ignore[misc]


def test_handler_asking_for_unknown_keyword_is_a_type_error() -> None:
    async def bad(*, input: dict, request: object) -> None: ...

    with pytest.raises(TypeError, match="request"):
        asyncjobs.Task("bad", bad)
    with pytest.raises(TypeError, match="request"):
        asyncjobs.Workflow("bad", bad)


def test_handler_with_kwargs_is_accepted() -> None:
    async def anything(**kwargs: object) -> None: ...

    assert asyncjobs.Task("t", anything).handler is anything


@pytest.mark.parametrize("path", ["no_colon", "a.b:", "1mod:attr", "mod:attr-x", "a..b:c"])
def test_bad_import_string_names_the_string(path: str) -> None:
    with pytest.raises(ValueError, match=r"import string|invalid syntax"):
        asyncjobs.Task("t", path)


def test_import_string_is_accepted_without_importing() -> None:
    task = asyncjobs.Task("t", "not_a_real_module.anywhere:handler")
    assert task.handler == "not_a_real_module.anywhere:handler"


def test_slug_must_be_a_non_empty_string() -> None:
    with pytest.raises(ValueError, match="slug"):
        asyncjobs.Task("", noop)


def test_slug_clash_between_task_and_workflow_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'same'"):
        asyncjobs.Jobs(
            tasks=[asyncjobs.Task("same", noop)], workflows=[asyncjobs.Workflow("same", noop)]
        )


def test_schemas_must_be_pydantic_models() -> None:
    with pytest.raises(TypeError, match="input_schema"):
        asyncjobs.Task("t", noop, input_schema=dict)  # type: ignore[arg-type]


def test_retries_validate_attempts() -> None:
    with pytest.raises(ValueError, match="attempts"):
        asyncjobs.Retries(attempts=-1)
    with pytest.raises(TypeError, match="retries"):
        asyncjobs.Task("t", noop, retries="3")  # type: ignore[arg-type]


def test_backoff_validates_type_and_delay() -> None:
    with pytest.raises(ValueError, match="type"):
        asyncjobs.Backoff(type="linear")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="negative"):
        asyncjobs.Backoff(delay=-1)
    assert asyncjobs.Backoff(delay=timedelta(seconds=2)).delay == timedelta(seconds=2)


def test_should_restore_callable_is_checked() -> None:
    def bad(*, nope: object) -> bool:
        return True

    with pytest.raises(TypeError, match="nope"):
        asyncjobs.Retries(should_restore=bad)


@pytest.mark.parametrize(("duration", "buffer"), [(10, 10), (10, -1), (5, 6)])
def test_lease_needs_buffer_below_duration(duration: float, buffer: float) -> None:
    with pytest.raises(ValueError, match="safety_buffer"):
        asyncjobs.Lease(duration=duration, safety_buffer=buffer)


def test_call_site_retries_override_field_by_field() -> None:
    base = asyncjobs.Retries(attempts=3, backoff=asyncjobs.Backoff(delay=5))
    merged = merge_retries(base, asyncjobs.Retries(attempts=1))
    assert merged is not None
    assert merged.attempts == 1
    assert merged.backoff == asyncjobs.Backoff(delay=5)


def test_processing_order_rejects_unknown_fields() -> None:
    with pytest.raises(ValueError, match="sort"):
        asyncjobs.ProcessingOrder(default="nope")
    with pytest.raises(ValueError, match="sort"):
        asyncjobs.Jobs(processing_order="-nope")


def test_bad_cron_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match="61 \\* \\* \\* \\*"):
        asyncjobs.Schedule(cron="61 * * * *", queue="q")
    with pytest.raises(ValueError, match="every minute"):
        asyncjobs.AutoRun(cron="every minute")


def test_a_cron_that_never_fires_is_refused_where_it_is_defined() -> None:
    with pytest.raises(ValueError, match="'0 0 30 2 \\*' never fires"):
        asyncjobs.Schedule(cron="0 0 30 2 *", queue="q")
    with pytest.raises(ValueError, match="'0 0 31 4 \\*' never fires"):
        asyncjobs.AutoRun(cron="0 0 31 4 *")


def test_auto_run_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        asyncjobs.AutoRun(limit=0)
    with pytest.raises(ValueError, match="limit"):
        asyncjobs.AutoRun(limit=True)  # type: ignore[arg-type]


@pytest.mark.parametrize("queue", [None, ""])
def test_auto_run_queue_must_be_a_name(queue: object) -> None:
    # run(queue=None) would have taken every queue
    with pytest.raises(ValueError, match="queue"):
        asyncjobs.AutoRun(queue=queue)  # type: ignore[arg-type]


def test_access_callables_take_request_only() -> None:
    with pytest.raises(TypeError, match="user"):
        asyncjobs.Access(run=lambda user: True)


def test_concurrency_accepts_a_bare_key_callable() -> None:
    task = asyncjobs.Task("t", noop, concurrency=lambda input: input["doc"])
    assert isinstance(task.concurrency, asyncjobs.Concurrency)
    assert task.concurrency.exclusive


def test_jobs_rejects_bad_configuration() -> None:
    with pytest.raises(TypeError, match="auto_run"):
        asyncjobs.Jobs(auto_run=["* * * * *"])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="lease"):
        asyncjobs.Jobs(lease=60)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tasks"):
        asyncjobs.Jobs(tasks=[noop])  # type: ignore[list-item]


def test_repr_hides_the_database_password() -> None:
    jobs = asyncjobs.Jobs(database_url="postgresql+asyncpg://user:s3cret@db/x")
    assert "s3cret" not in repr(jobs)


def test_database_url_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCJOBS_DATABASE_URL", "sqlite+aiosqlite:///from-env.db")
    assert asyncjobs.Jobs().database_url == "sqlite+aiosqlite:///from-env.db"
    monkeypatch.delenv("ASYNCJOBS_DATABASE_URL")
    assert asyncjobs.Jobs().database_url == "sqlite+aiosqlite:///asyncjobs.db"


async def test_unsupported_database_url_is_named() -> None:
    from asyncjobs.storage import store_for

    with pytest.raises(ValueError, match="mysql"):
        await store_for("mysql+aiomysql://u@h/db").open()


def test_public_names_are_all_exported() -> None:
    expected = {
        "Jobs",
        "Task",
        "Workflow",
        "task",
        "workflow",
        "Retries",
        "Backoff",
        "Schedule",
        "AutoRun",
        "Concurrency",
        "ProcessingOrder",
        "Access",
        "Lease",
        "Job",
        "JobLogEntry",
        "TaskStatus",
        "RunResult",
        "ScheduleResult",
        "JobCancelled",
        "AsyncJobsError",
        "ValidationError",
        "NotRegistered",
        "Forbidden",
    }
    assert expected <= set(asyncjobs.__all__)
    for name in asyncjobs.__all__:
        assert hasattr(asyncjobs, name), name
    assert issubclass(asyncjobs.ValidationError, asyncjobs.AsyncJobsError)


class Model(BaseModel):
    x: int
