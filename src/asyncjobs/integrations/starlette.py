"""Starlette and FastAPI: run ``jobs`` with the app's lifespan and mount its HTTP endpoints.

::

    from asyncjobs.integrations.starlette import lifespan, mount, mount_dashboard

    app = Starlette(routes=[..., mount(jobs)], lifespan=lifespan(jobs, app_lifespan))
    app = FastAPI(lifespan=lifespan(jobs)); app.router.routes.append(mount(jobs))
    routes.append(mount_dashboard(jobs))   # the dashboard under /jobs (asyncjobs[dashboard])

Inside a request, ``request.app.state.jobs`` is the ``Jobs`` object.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from starlette.routing import Mount

from asyncjobs.definitions import DEFAULT_STOP_TIMEOUT
from asyncjobs.jobs import Jobs

DEFAULT_PREFIX = "/api/jobs"
DEFAULT_DASHBOARD_PREFIX = "/jobs"

State = Mapping[str, Any] | None
AppLifespan = Callable[[Any], AbstractAsyncContextManager[State]]


def lifespan(
    jobs: Jobs,
    app_lifespan: AppLifespan | None = None,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
) -> AppLifespan:
    """A lifespan for ``Starlette(lifespan=...)`` or ``FastAPI(lifespan=...)``.

    ``jobs`` starts first (so the app's own startup may queue jobs) and stops last, after
    the app's own lifespan has finished; running jobs get ``stop_timeout`` seconds to finish.

    Args:
        jobs: the ``Jobs`` object to start and stop; also set as ``app.state.jobs``.
        app_lifespan: the app's own lifespan (an async context manager factory taking the
            app, or an async generator function); whatever state it yields is passed on.

    Returns:
        A callable taking the app and returning an async context manager.
    """
    inner = _as_context(app_lifespan)

    @asynccontextmanager
    async def run(app: Any) -> AsyncIterator[State]:
        app.state.jobs = jobs
        async with jobs.lifespan(stop_timeout=stop_timeout):
            if inner is None:
                yield None
                return
            async with inner(app) as state:
                yield state

    return run


def _as_context(app_lifespan: AppLifespan | None) -> AppLifespan | None:
    if app_lifespan is not None and inspect.isasyncgenfunction(app_lifespan):
        return asynccontextmanager(app_lifespan)
    if app_lifespan is not None and not callable(app_lifespan):
        raise TypeError(f"app_lifespan must be callable, got {app_lifespan!r}")
    return app_lifespan


def mount(jobs: Jobs, prefix: str = DEFAULT_PREFIX) -> Mount:
    """A route serving ``GET {prefix}/run`` and ``GET {prefix}/handle-schedules``."""
    return Mount(prefix, app=jobs.asgi_app(), name="asyncjobs")


def mount_dashboard(jobs: Jobs, prefix: str = DEFAULT_DASHBOARD_PREFIX) -> Mount:
    """A route serving the dashboard of ``jobs`` (``Jobs.dashboard_app()``) under ``prefix``."""
    return Mount(prefix, app=jobs.dashboard_app(), name="asyncjobs-dashboard")
