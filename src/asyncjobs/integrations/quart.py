"""Quart: start ``jobs`` with the app's serving hooks and serve its endpoints as a blueprint.

::

    from asyncjobs.integrations.quart import init_app

    app = Quart(__name__)
    init_app(app, jobs)             # GET /api/jobs/run and GET /api/jobs/handle-schedules
    init_app(app, jobs, dashboard_prefix="/jobs")   # ... and the dashboard under /jobs

Inside a request, ``current_app.extensions["asyncjobs"]`` is the ``Jobs`` object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from quart import Blueprint, Quart, Response, request

from asyncjobs.asgi import Request
from asyncjobs.definitions import DEFAULT_STOP_TIMEOUT
from asyncjobs.http import ENDPOINTS, respond
from asyncjobs.integrations.mounting import Prefixed
from asyncjobs.jobs import Jobs

DEFAULT_PREFIX = "/api/jobs"
EXTENSION = "asyncjobs"
# Every method reaches the view, so that a wrong one gets the endpoints' own JSON 405.
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def init_app(
    app: Quart,
    jobs: Jobs,
    prefix: str = DEFAULT_PREFIX,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    dashboard_prefix: str | None = None,
) -> Blueprint:
    """Start ``jobs`` before serving, stop it after serving, and register the endpoints.

    Args:
        app: the Quart app.
        jobs: the ``Jobs`` object; also set as ``app.extensions["asyncjobs"]``.
        prefix: where ``GET /run`` and ``GET /handle-schedules`` are served.
        stop_timeout: seconds running jobs get to finish after serving before they are
            handed back (``Jobs.stop(timeout=...)``).
        dashboard_prefix: where to serve the dashboard (``asyncjobs[dashboard]``); ``None``
            serves none.

    Returns:
        The registered blueprint.
    """
    app.extensions[EXTENSION] = jobs
    app.before_serving(jobs.start)

    async def stop() -> None:
        await jobs.stop(timeout=stop_timeout)

    app.after_serving(stop)
    endpoints = blueprint(jobs)
    app.register_blueprint(endpoints, url_prefix=prefix)
    if dashboard_prefix is not None:
        # Quart's documented place for ASGI middleware: requests under the prefix never
        # reach Quart's routing.
        dashboard = Prefixed(dashboard_prefix, jobs.dashboard_app(), app.asgi_app)
        app.asgi_app = dashboard  # type: ignore[method-assign,assignment]
    return endpoints


def blueprint(jobs: Jobs) -> Blueprint:
    """A blueprint serving the endpoints of ``jobs`` (register it with a ``url_prefix``)."""
    endpoints = Blueprint(EXTENSION, __name__)
    for path in ENDPOINTS:
        endpoints.add_url_rule(
            path, path.strip("/"), _view(jobs, path), methods=METHODS, strict_slashes=True
        )
    return endpoints


def _view(jobs: Jobs, path: str) -> Callable[[], Awaitable[Response]]:
    async def view() -> Response:
        answer = await respond(jobs, Request(cast(dict[str, Any], request.scope), path=path))
        return Response(
            answer.content(),
            status=answer.status,
            headers={"cache-control": "no-store", **dict(answer.headers)},
            content_type="application/json",
        )

    return view
