"""The ASGI endpoints: access, parameters, answers and the lifespan of ``Jobs.asgi_app()``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest

import asyncjobs
from asyncjobs.asgi import Headers, Request, route_path
from asyncjobs.http import parse_params
from tests.lifespan import lifespan_messages

SECRET = "s3cret-token"
AUTH = {"Authorization": f"Bearer {SECRET}"}

MakeJobs = Callable[..., asyncjobs.Jobs]


@pytest.fixture
def backend() -> str:
    # The endpoints only translate HTTP into the Jobs API, whose storage suite covers both
    # databases; one database keeps this matrix fast.
    return "sqlite"


@asyncjobs.task("add")
async def add(*, input: dict[str, Any]) -> dict[str, Any]:
    return {"sum": input["a"] + input["b"]}


@asyncjobs.task("ticker", schedule=[asyncjobs.Schedule(cron="* * * * *")])
async def ticker() -> None:
    return None


def client(app: Any, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://jobs.test")


async def get(jobs: asyncjobs.Jobs, url: str, **kwargs: Any) -> httpx.Response:
    async with client(jobs.asgi_app()) as http:
        return await http.get(url, **kwargs)


async def statuses(jobs: asyncjobs.Jobs) -> list[str]:
    return [job.status for job in await jobs.find(order="id")]


# -- access --------------------------------------------------------------------------------


async def test_request_without_credentials_gets_401_and_runs_nothing(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, "/run")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Unauthorized" in response.json()["message"]
    assert await statuses(jobs) == ["queued"]


@pytest.mark.parametrize(
    "header",
    [f"Bearer {SECRET}x", f"Bearer {SECRET[:-1]}", f"Basic {SECRET}", "Bearer", "Bearer  ", SECRET],
)
async def test_wrong_authorization_gets_401(make_jobs: MakeJobs, header: str) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, "/run", headers={"Authorization": header})
    assert response.status_code == 401
    assert await statuses(jobs) == ["queued"]


async def test_bearer_scheme_is_case_insensitive(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    response = await get(jobs, "/run", headers={"authorization": f"bearer {SECRET}"})
    assert response.status_code == 200


async def test_without_secret_or_access_every_request_is_refused(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add])
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    for header in ("Bearer ", "Bearer None", f"Bearer {SECRET}"):
        response = await get(jobs, "/run", headers={"Authorization": header})
        assert response.status_code == 401
    assert (await get(jobs, "/handle-schedules")).status_code == 401
    assert await statuses(jobs) == ["queued"]


@pytest.mark.parametrize(
    ("secret", "access", "expected"),
    [
        (SECRET, None, "send the secret as 'Authorization: Bearer <secret>'."),
        (SECRET, lambda: False, "'Authorization: Bearer <secret>', or a request that Access.run"),
        (None, lambda: False, "Access.run did not approve this request."),
        (None, None, "every request is refused until Jobs(secret=...) or Access(run=...) is"),
        (None, asyncjobs.Access(queue=lambda: True), "every request is refused until"),
    ],
)
async def test_the_401_says_which_credentials_are_expected(
    make_jobs: MakeJobs, secret: str | None, access: Any, expected: str
) -> None:
    if callable(access):
        access = asyncjobs.Access(run=access)
    jobs = make_jobs(tasks=[add], secret=secret, access=access)
    response = await get(jobs, "/run")
    assert response.status_code == 401
    message = response.json()["message"]
    assert message.startswith("Unauthorized: ") and expected in message


@pytest.mark.parametrize(
    ("secret", "error", "problem"),
    [
        (" s3cret", ValueError, "must not start or end with whitespace"),
        ("s3cret\n", ValueError, "must not start or end with whitespace"),
        ("s3c\x00ret", ValueError, "printable characters only"),
        ("s3c\nret", ValueError, "printable characters only"),
        ("s3cr\ud800t", ValueError, "printable characters only"),
        (b"s3cret", TypeError, "secret must be a str or None"),
    ],
)
def test_a_secret_no_request_could_carry_is_refused(
    secret: Any, error: type[Exception], problem: str
) -> None:
    with pytest.raises(error, match=problem):
        asyncjobs.Jobs(tasks=[add], secret=secret)


async def test_empty_secret_counts_as_no_secret(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret="")
    response = await get(jobs, "/run", headers={"Authorization": "Bearer "})
    assert response.status_code == 401


async def test_access_run_receives_the_request_and_can_allow(make_jobs: MakeJobs) -> None:
    seen: list[Request] = []

    def check(*, request: Request) -> bool:
        seen.append(request)
        return request.headers["X-Cron-Key"] == "yes"

    jobs = make_jobs(tasks=[add], access=asyncjobs.Access(run=check))
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, "/run?limit=5&queue=default", headers={"x-cron-key": "yes"})
    assert response.status_code == 200
    (request,) = seen
    assert request.query_params == {"limit": "5", "queue": "default"}
    assert request.headers.get("X-CRON-KEY") == "yes"
    assert request.client is not None and request.client.host == "127.0.0.1"
    assert request.scope["type"] == "http"
    assert request.method == "GET" and request.path == "/run"
    assert await statuses(jobs) == ["completed"]


async def test_async_access_run_refusal_gets_401(make_jobs: MakeJobs) -> None:
    async def check(request: Request) -> bool:
        return False

    jobs = make_jobs(tasks=[add], access=asyncjobs.Access(run=check))
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    assert (await get(jobs, "/run")).status_code == 401
    assert await statuses(jobs) == ["queued"]


@pytest.mark.parametrize("answer", ["false", "yes", 1, {"allowed": False}, [True], None])
async def test_access_run_approves_only_with_true(make_jobs: MakeJobs, answer: Any) -> None:
    async def check() -> Any:
        return answer

    jobs = make_jobs(tasks=[add], access=asyncjobs.Access(run=check))
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    assert (await get(jobs, "/run")).status_code == 401
    assert await statuses(jobs) == ["queued"]


async def test_secret_allows_when_access_run_refuses(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET, access=asyncjobs.Access(run=lambda: False))
    assert (await get(jobs, "/run", headers=AUTH)).status_code == 200


async def test_failing_access_check_gets_500_and_runs_nothing(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    def check() -> bool:
        raise RuntimeError("session store down")

    jobs = make_jobs(tasks=[add], access=asyncjobs.Access(run=check))
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    with caplog.at_level(logging.ERROR, logger="asyncjobs.http"):
        response = await get(jobs, "/run")
    assert response.status_code == 500
    assert "session store down" in caplog.text
    assert await statuses(jobs) == ["queued"]


# -- /run ----------------------------------------------------------------------------------


async def test_run_runs_due_jobs_and_answers_as_the_reference(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, "/run", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    assert response.json() == {
        "message": "Success",
        "noJobsRemaining": False,
        "remainingJobsFromQueried": 0,
    }
    (job,) = await jobs.find()
    assert job.status == "completed"
    assert job.task_status["add"]["1"].output == {"sum": 3}


async def test_run_with_nothing_due_reports_no_jobs_remaining(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    response = await get(jobs, "/run", headers=AUTH)
    assert response.json()["noJobsRemaining"] is True


async def test_run_honours_queue_and_limit(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    for queue in ("default", "other", "other"):
        await jobs.queue(task="add", input={"a": 1, "b": 1}, queue=queue)
    response = await get(jobs, "/run?queue=other&limit=1", headers=AUTH)
    assert response.status_code == 200
    assert await statuses(jobs) == ["queued", "completed", "queued"]


async def test_run_all_queues(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    for queue in ("default", "other", "third"):
        await jobs.queue(task="add", input={"a": 1, "b": 1}, queue=queue)
    response = await get(jobs, "/run?allQueues=true&queue=none", headers=AUTH)
    assert response.status_code == 200
    assert await statuses(jobs) == ["completed"] * 3


async def test_run_counts_failed_jobs_as_remaining(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[asyncjobs.Task("add", add.handler, retries=1)], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1})
    response = await get(jobs, "/run", headers=AUTH)
    assert response.json()["remainingJobsFromQueried"] == 1


async def test_run_error_gets_500_and_is_logged(
    make_jobs: MakeJobs, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_order(args: dict[str, Any]) -> str:
        raise RuntimeError("order lookup failed")

    jobs = make_jobs(tasks=[add], secret=SECRET, processing_order=broken_order)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    with caplog.at_level(logging.ERROR, logger="asyncjobs.http"):
        response = await get(jobs, "/run", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {
        "message": "An unknown error has occurred.",
        "noJobsRemaining": True,
        "remainingJobsFromQueried": 0,
    }
    assert "There was an error running jobs" in caplog.text
    assert "order lookup failed" in caplog.text


@pytest.mark.parametrize("path", ["/run", "/handle-schedules"])
async def test_unreachable_database_gets_500_and_is_logged(
    tmp_path: Any, caplog: pytest.LogCaptureFixture, path: str
) -> None:
    missing = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'jobs.db'}"
    jobs = asyncjobs.Jobs(tasks=[add, ticker], database_url=missing, auto_run=[], secret=SECRET)
    with caplog.at_level(logging.ERROR, logger="asyncjobs.http"):
        response = await get(jobs, path, headers=AUTH)
    assert response.status_code == 500
    assert response.json()["message"] == "An unknown error has occurred."
    assert "missing" in caplog.text
    await jobs.stop()


async def test_run_without_any_definitions_has_no_jobs_to_run(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(secret=SECRET)
    response = await get(jobs, "/run", headers=AUTH)
    assert response.status_code == 200
    assert response.json() == {"message": "No jobs to run."}


async def test_run_with_disable_scheduling_enqueues_no_scheduled_job(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[ticker], secret=SECRET)
    response = await get(jobs, "/run?disableScheduling=true", headers=AUTH)
    assert response.status_code == 200
    assert await jobs.find() == []


async def test_run_handles_schedules_first(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[ticker], secret=SECRET)
    response = await get(jobs, "/run", headers=AUTH)
    assert response.status_code == 200
    (job,) = await jobs.find()
    assert job.task_slug == "ticker" and job.meta == {"scheduled": True}


# -- /handle-schedules ---------------------------------------------------------------------


async def test_handle_schedules_without_schedules_gets_500(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    response = await get(jobs, "/handle-schedules", headers=AUTH)
    assert response.status_code == 500
    assert response.json() == {
        "message": "Cannot handle schedules because no tasks or workflows with schedules "
        "are defined."
    }


async def test_handle_schedules_lists_outcomes_as_slug_and_queue(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[ticker], secret=SECRET)
    first = await get(jobs, "/handle-schedules", headers=AUTH)
    assert first.status_code == 200
    assert first.json() == {
        "message": "Success",
        "queued": [{"slug": "ticker", "queue": "default"}],
        "skipped": [],
        "errored": [],
    }
    second = await get(jobs, "/handle-schedules", headers=AUTH)
    assert second.json()["skipped"] == [{"slug": "ticker", "queue": "default"}]


async def test_handle_schedules_only_the_queue_asked_for(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[ticker], secret=SECRET)
    response = await get(jobs, "/handle-schedules?queue=other", headers=AUTH)
    assert response.json()["queued"] == []
    assert await jobs.find() == []


# -- parameters, methods, paths -------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "name"),
    [
        ("limit=abc", "limit"),
        ("limit=0", "limit"),
        ("limit=-1", "limit"),
        ("limit=", "limit"),
        ("limit=1.5", "limit"),
        ("limit=%C2%B2", "limit"),
        ("limit=10001", "limit"),
        ("limit=1&limit=2", "limit"),
        ("allQueues=maybe", "allQueues"),
        ("allQueues=", "allQueues"),
        ("disableScheduling=2", "disableScheduling"),
        ("silent=loud", "silent"),
        ("queue=", "queue"),
        ("queue=%20", "queue"),
        ("limit=" + "9" * 4301, "limit"),
        ("limit=" + "0" * 5000 + "1", "limit"),
        ("queue=%00", "queue"),
        ("queue=a%00b", "queue"),
        ("queue=" + "q" * 201, "queue"),
        ("allQueues=1", "allQueues"),
        ("allQueues=yes", "allQueues"),
        ("silent=TRUE", "silent"),
        ("disableScheduling=%20true", "disableScheduling"),
        ("allqueues=true", "allqueues"),
        ("Limit=abc", "Limit"),
        ("limit=5&unknown=x", "unknown"),
        ("=x", ""),
        ("queue%00=x", "queue\x00"),
    ],
)
@pytest.mark.parametrize("path", ["/run", "/handle-schedules"])
async def test_malformed_parameter_gets_400_naming_it(
    make_jobs: MakeJobs, path: str, query: str, name: str
) -> None:
    jobs = make_jobs(tasks=[add, ticker], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, f"{path}?{query}", headers=AUTH)
    assert response.status_code == 400
    assert repr(name) in response.json()["message"]
    assert await statuses(jobs) == ["queued"]


async def test_unauthorized_request_with_bad_parameters_gets_401(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    assert (await get(jobs, "/run?limit=abc")).status_code == 401


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
@pytest.mark.parametrize("query", ["queue=%00", "queue=%C0%80", "limit=" + "1" * 5000])
async def test_a_malformed_parameter_gets_400_on_both_backends(
    make_jobs: MakeJobs, query: str
) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    response = await get(jobs, f"/run?{query}", headers=AUTH)
    assert response.status_code == (200 if "C0" in query else 400)  # a bad byte reads as U+FFFD
    assert await statuses(jobs) == ["queued"]


def test_an_unknown_parameter_is_named_with_the_one_it_resembles() -> None:
    with pytest.raises(ValueError, match=r"unknown query parameter 'allqueues' \(did you mean "):
        parse_params([("allqueues", "true")])
    with pytest.raises(ValueError, match=r"parameter 'Limit' .*'limit'.*; use queue, limit, "):
        parse_params([("Limit", "abc")])
    with pytest.raises(ValueError, match="parameter 'colour'; use queue, limit, allQueues, "):
        parse_params([("colour", "red")])


def test_parameters_default_and_parse() -> None:
    assert parse_params([]) == parse_params([("silent", "false")])
    params = parse_params([("limit", "7"), ("allQueues", "true"), ("silent", "true")])
    assert (params.limit, params.all_queues, params.silent) == (7, True, True)
    params = parse_params([("disableScheduling", "false"), ("queue", "mail")])
    assert (params.disable_scheduling, params.queue, params.limit) == (False, "mail", 10)


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "HEAD"])
async def test_other_methods_get_405(make_jobs: MakeJobs, method: str) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    await jobs.queue(task="add", input={"a": 1, "b": 2})
    async with client(jobs.asgi_app()) as http:
        response = await http.request(method, "/run", headers=AUTH)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET"
    assert await statuses(jobs) == ["queued"]


@pytest.mark.parametrize("path", ["/", "/runs", "/run/", "/api/jobs/run"])
async def test_unknown_path_gets_404(make_jobs: MakeJobs, path: str) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    response = await get(jobs, path, headers=AUTH)
    assert response.status_code == 404


async def test_endpoints_work_below_a_root_path(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    async with client(jobs.asgi_app(), root_path="/api/jobs") as http:
        assert (await http.get("/api/jobs/run", headers=AUTH)).status_code == 200
        assert (await http.get("/api/jobsx/run", headers=AUTH)).status_code == 404


def test_route_path_strips_only_a_whole_root_segment() -> None:
    assert route_path({"path": "/api/jobs/run", "root_path": "/api/jobs"}) == "/run"
    assert route_path({"path": "/api/jobs", "root_path": "/api/jobs"}) == "/"
    assert route_path({"path": "/api/jobsrun", "root_path": "/api/jobs"}) == "/api/jobsrun"
    assert route_path({"path": "/run"}) == "/run"


def test_headers_are_case_insensitive_and_keep_repeats() -> None:
    headers = Headers([(b"X-Key", b"a"), (b"x-key", b"b"), (b"Accept", b"*/*")])
    assert headers["x-KEY"] == "a"
    assert headers.getlist("X-Key") == ["a", "b"]
    assert sorted(headers) == ["accept", "x-key"] and len(headers) == 2
    assert "missing" not in headers


# -- ASGI protocol -------------------------------------------------------------------------


async def test_asgi_app_lifespan_starts_and_stops_jobs(make_jobs: MakeJobs) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    sent = await lifespan_messages(jobs.asgi_app(), "startup", "shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_asgi_app_lifespan_reports_a_failed_startup(make_jobs: MakeJobs) -> None:
    def should_auto_run(jobs: asyncjobs.Jobs) -> bool:
        raise RuntimeError("no decision possible")

    jobs = make_jobs(tasks=[add], should_auto_run=should_auto_run)
    (message,) = await lifespan_messages(jobs.asgi_app(), "startup")
    assert message["type"] == "lifespan.startup.failed"
    assert "no decision possible" in message["message"]


async def test_websocket_connections_are_closed_and_other_scopes_ignored(
    make_jobs: MakeJobs,
) -> None:
    jobs = make_jobs(tasks=[add], secret=SECRET)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> Any:
        return {"type": "websocket.connect"}

    await jobs.asgi_app()({"type": "websocket", "path": "/run"}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    await jobs.asgi_app()({"type": "webtransport", "path": "/run"}, receive, send)
    assert len(sent) == 1
