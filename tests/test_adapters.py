"""The framework adapters in process: lifespan order, routing, settings and blueprints."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from quart import Quart
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import asyncjobs
from asyncjobs.integrations import django as django_adapter
from asyncjobs.integrations import quart as quart_adapter
from asyncjobs.integrations import starlette as starlette_adapter
from tests.lifespan import lifespan_messages

SECRET = "adapter-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@asyncjobs.task("noop")
async def noop() -> None:
    return None


class RecordingJobs(asyncjobs.Jobs):
    """A ``Jobs`` that notes when it is started and stopped."""

    def __init__(self, events: list[str], **options: Any) -> None:
        super().__init__(**options)
        self.events = events
        self.stop_timeouts: list[float] = []

    async def start(self, auto_run: bool = True) -> None:
        self.events.append("jobs start")
        await super().start(auto_run)

    async def stop(self, timeout: float = 10) -> None:
        self.events.append("jobs stop")
        self.stop_timeouts.append(timeout)
        await super().stop(timeout)


@pytest.fixture
def events() -> list[str]:
    return []


@pytest.fixture
async def jobs(tmp_path: Path, events: list[str]) -> AsyncIterator[RecordingJobs]:
    made = RecordingJobs(
        events,
        tasks=[noop],
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
        auto_run=[],
        secret=SECRET,
        delete_job_on_complete=False,
    )
    yield made
    await made.stop()


def client(app: Any, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://app.test")


# -- Starlette / FastAPI -------------------------------------------------------------------


async def test_starlette_lifespan_wraps_the_apps_own(
    jobs: RecordingJobs, events: list[str]
) -> None:
    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        events.append("app start")
        yield {"answer": 42}
        events.append("app stop")

    app = Starlette(lifespan=starlette_adapter.lifespan(jobs, own))
    async with app.router.lifespan_context(app) as state:
        assert state == {"answer": 42}
        assert app.state.jobs is jobs
    assert events == ["jobs start", "app start", "app stop", "jobs stop"]


async def test_starlette_lifespan_accepts_an_async_generator(
    jobs: RecordingJobs, events: list[str]
) -> None:
    async def own(app: Starlette) -> AsyncIterator[None]:
        events.append("app start")
        yield

    app = Starlette(lifespan=starlette_adapter.lifespan(jobs, own))
    async with app.router.lifespan_context(app) as state:
        assert state is None
    assert events == ["jobs start", "app start", "jobs stop"]


async def test_failing_app_startup_stops_jobs(jobs: RecordingJobs, events: list[str]) -> None:
    @asynccontextmanager
    async def own(app: Starlette) -> AsyncIterator[None]:
        raise RuntimeError("app cannot start")
        yield

    app = Starlette(lifespan=starlette_adapter.lifespan(jobs, own))
    with pytest.raises(RuntimeError, match="app cannot start"):
        async with app.router.lifespan_context(app):
            pass
    assert events == ["jobs start", "jobs stop"]


@pytest.mark.parametrize(("options", "expected"), [({}, 10), ({"stop_timeout": 2.5}, 2.5)])
async def test_starlette_lifespan_passes_stop_timeout_to_stop(
    jobs: RecordingJobs, options: dict[str, float], expected: float
) -> None:
    app = Starlette(lifespan=starlette_adapter.lifespan(jobs, **options))
    async with app.router.lifespan_context(app):
        pass
    assert jobs.stop_timeouts == [expected]


async def test_starlette_lifespan_rejects_a_non_callable(jobs: RecordingJobs) -> None:
    with pytest.raises(TypeError, match="app_lifespan"):
        starlette_adapter.lifespan(jobs, "not callable")  # type: ignore[arg-type]


async def test_starlette_mount_serves_the_endpoints_and_requests_see_jobs(
    jobs: RecordingJobs,
) -> None:
    async def queue_one(request: Request) -> JSONResponse:
        job = await request.app.state.jobs.queue(task="noop")
        return JSONResponse({"id": job.id})

    app = Starlette(
        routes=[Route("/queue", queue_one, methods=["POST"]), starlette_adapter.mount(jobs)],
        lifespan=starlette_adapter.lifespan(jobs),
    )
    async with app.router.lifespan_context(app), client(app) as http:
        assert (await http.post("/queue")).status_code == 200
        assert (await http.get("/api/jobs/run")).status_code == 401
        ran = await http.get("/api/jobs/run", headers=AUTH)
        assert ran.json()["noJobsRemaining"] is False
    (job,) = await jobs.find()
    assert job.status == "completed"


async def test_starlette_mount_takes_a_prefix(jobs: RecordingJobs) -> None:
    app = Starlette(routes=[starlette_adapter.mount(jobs, prefix="/ops/queue")])
    async with client(app) as http:
        assert (await http.get("/ops/queue/run", headers=AUTH)).status_code == 200
        assert (await http.get("/api/jobs/run", headers=AUTH)).status_code == 404


# -- Django --------------------------------------------------------------------------------


async def other_app(scope: Any, receive: Any, send: Any) -> None:
    """A plain ASGI app standing where Django would: it names the path it was given."""
    body = f"other {scope.get('root_path', '')}|{scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize(
    ("path", "served_by"),
    [
        ("/api/jobs/run", "jobs"),
        ("/api/jobs/handle-schedules", "jobs"),
        ("/api/jobs", "jobs"),
        ("/api/jobsrun", "other"),
        ("/api/job/run", "other"),
        ("/", "other"),
    ],
)
async def test_django_wrapper_routes_by_prefix(
    jobs: RecordingJobs, path: str, served_by: str
) -> None:
    app = django_adapter.asgi(jobs, django_app=other_app)
    async with client(app) as http:
        answer = await http.get(path)
    if served_by == "jobs":
        assert answer.headers["content-type"] == "application/json"
    else:
        assert answer.text == f"other |{path}"


async def test_django_wrapper_honours_root_path_and_prefix(jobs: RecordingJobs) -> None:
    app = django_adapter.asgi(jobs, django_app=other_app, prefix="/tasks/")
    async with client(app, root_path="/site") as http:
        assert (await http.get("/site/tasks/run", headers=AUTH)).status_code == 200
        assert (await http.get("/site/tasks/run")).status_code == 401
        assert (await http.get("/site/page")).text == "other /site|/site/page"


async def test_django_wrapper_starts_and_stops_jobs_on_lifespan(
    jobs: RecordingJobs, events: list[str]
) -> None:
    app = django_adapter.asgi(jobs, django_app=other_app)
    sent = await lifespan_messages(app, "startup", "shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["jobs start", "jobs stop"]


@pytest.mark.parametrize(("options", "expected"), [({}, 10), ({"stop_timeout": 2.5}, 2.5)])
async def test_django_wrapper_passes_stop_timeout_to_stop(
    jobs: RecordingJobs, options: dict[str, float], expected: float
) -> None:
    app = django_adapter.asgi(jobs, django_app=other_app, **options)
    await lifespan_messages(app, "startup", "shutdown")
    assert jobs.stop_timeouts == [expected]


@pytest.mark.parametrize("prefix", ["api/jobs", "/", ""])
async def test_django_wrapper_rejects_a_bad_prefix(jobs: RecordingJobs, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        django_adapter.asgi(jobs, django_app=other_app, prefix=prefix)


SETTINGS_JOBS = asyncjobs.Jobs(
    tasks=[noop], database_url="sqlite+aiosqlite:///:memory:", auto_run=[], secret=SECRET
)


@pytest.fixture(scope="module")
def django_settings() -> Iterator[None]:
    import tests.django_site  # noqa: F401  (Django's settings are one per process)

    yield


@pytest.mark.usefixtures("django_settings")
async def test_django_settings_name_the_jobs_and_the_prefix() -> None:
    from django.test import override_settings

    setting = {"JOBS": "tests.test_adapters:SETTINGS_JOBS", "PREFIX": "/q"}
    with override_settings(ASYNCJOBS=setting):
        assert django_adapter.get_jobs() is SETTINGS_JOBS
        app = django_adapter.asgi()
        async with client(app) as http:
            assert (await http.get("/q/run")).status_code == 401
            missing = await http.get("/jobs/999")  # a view of the example project
    assert app.jobs is SETTINGS_JOBS and app.prefix == "/q"
    assert missing.status_code == 404 and missing.json() == {"error": "no such job"}
    await SETTINGS_JOBS.stop()


@pytest.mark.usefixtures("django_settings")
@pytest.mark.parametrize(
    "value", [None, "tests.test_adapters:noop", "tests.test_adapters", SETTINGS_JOBS.tasks]
)
def test_django_setting_that_names_no_jobs_is_an_error(value: Any) -> None:
    from django.test import override_settings

    with (
        override_settings(ASYNCJOBS={"JOBS": value}),
        pytest.raises(ValueError, match='ASYNCJOBS\\["JOBS"\\]'),
    ):
        django_adapter.get_jobs()


# -- Quart ---------------------------------------------------------------------------------


async def test_quart_serving_hooks_start_and_stop_jobs(
    jobs: RecordingJobs, events: list[str]
) -> None:
    app = Quart(__name__)
    quart_adapter.init_app(app, jobs)
    assert app.extensions["asyncjobs"] is jobs
    async with app.test_app() as serving:
        assert events == ["jobs start"]
        http = serving.test_client()
        await jobs.queue(task="noop")
        assert (await http.get("/api/jobs/run")).status_code == 401
        ran = await http.get("/api/jobs/run", headers=AUTH)
        assert ran.status_code == 200
        assert await ran.get_json() == {
            "message": "Success",
            "noJobsRemaining": False,
            "remainingJobsFromQueried": 0,
        }
        assert ran.headers["cache-control"] == "no-store"
    assert events == ["jobs start", "jobs stop"]


@pytest.mark.parametrize(("options", "expected"), [({}, 10), ({"stop_timeout": 2.5}, 2.5)])
async def test_quart_after_serving_passes_stop_timeout_to_stop(
    jobs: RecordingJobs, options: dict[str, float], expected: float
) -> None:
    app = Quart(__name__)
    quart_adapter.init_app(app, jobs, **options)
    async with app.test_app():
        pass
    assert jobs.stop_timeouts == [expected]


async def test_quart_blueprint_answers_like_the_asgi_app(jobs: RecordingJobs) -> None:
    app = Quart(__name__)
    quart_adapter.init_app(app, jobs, prefix="/ops")
    http = app.test_client()
    wrong_method = await http.post("/ops/run", headers=AUTH)
    assert wrong_method.status_code == 405
    assert "not allowed" in (await wrong_method.get_json())["message"]
    bad = await http.get("/ops/run?limit=0", headers=AUTH)
    assert bad.status_code == 400 and "'limit'" in (await bad.get_json())["message"]
    no_schedules = await http.get("/ops/handle-schedules", headers=AUTH)
    assert no_schedules.status_code == 500
