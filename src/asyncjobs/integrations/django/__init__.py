"""Django: the ASGI wrapper that runs ``jobs``, a ``django.tasks`` backend, the admin, a command.

Add ``"asyncjobs.integrations.django"`` to ``INSTALLED_APPS`` for ``python manage.py asyncjobs
...`` and, when asyncjobs uses one of Django's databases, the jobs in Django's admin.
``TasksBackend`` (:mod:`.backend`) runs Django's ``@task`` functions as jobs of
:func:`task_runner`; :func:`options` gives one of them asyncjobs' retries, backoff,
concurrency and idempotency keys.

Django's ASGI handler refuses the lifespan protocol, so :func:`asgi` wraps it. In
``asgi.py``::

    from asyncjobs.integrations.django import asgi

    application = asgi()            # the Jobs object named by settings.ASYNCJOBS["JOBS"]

Settings (all optional when the ``Jobs`` object is passed to :func:`asgi`)::

    ASYNCJOBS = {
        "JOBS": "myproject.jobs:jobs",  # "module:attr" of the Jobs object (or the object)
        "PREFIX": "/api/jobs",          # where GET /run and GET /handle-schedules are served
        "DASHBOARD_PREFIX": "/jobs",    # where the dashboard is served (default: nowhere)
    }

The dashboard needs ``Jobs(access=Access(dashboard=...))`` or ``Jobs(secret=...)`` (HTTP Basic);
:func:`staff_user` approves the staff members signed in to the site.

Views queue jobs inside their own transaction with :func:`queue` / :func:`aqueue`
(:mod:`.queueing`), which write with Django's connection and wake the runner on commit.
Views reach the object with :func:`get_jobs`. Async views ``await jobs.queue(...)``; sync
views, which Django runs in a worker thread, call ``async_to_sync(jobs.queue)(...)`` (from
``asgiref.sync``), which runs the call on the server's event loop where ``jobs`` lives. Django's
tasks API (``Task.enqueue()``) and the admin work from any view, also under WSGI (:mod:`.bridge`).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asyncjobs.asgi import Receive, Scope, Send, route_path
from asyncjobs.definitions import DEFAULT_STOP_TIMEOUT
from asyncjobs.http import serve_lifespan
from asyncjobs.integrations.django import bridge
from asyncjobs.integrations.django.loading import _settings, get_jobs
from asyncjobs.integrations.mounting import Prefixed
from asyncjobs.jobs import Jobs

if TYPE_CHECKING:
    from asyncjobs.integrations.django.access import staff_user
    from asyncjobs.integrations.django.backend import TasksBackend
    from asyncjobs.integrations.django.queueing import aqueue, queue
    from asyncjobs.integrations.django.runner import task_runner
    from asyncjobs.integrations.django.task_options import options

__all__ = [
    "DEFAULT_PREFIX",
    "JobsASGI",
    "TasksBackend",
    "aqueue",
    "asgi",
    "get_jobs",
    "options",
    "queue",
    "staff_user",
    "task_runner",
]
_LAZY = {  # they import Django's tasks API or its ORM, which plain ``asgi()`` users may not have
    "TasksBackend": "asyncjobs.integrations.django.backend",
    "task_runner": "asyncjobs.integrations.django.runner",
    "options": "asyncjobs.integrations.django.task_options",
    "staff_user": "asyncjobs.integrations.django.access",
    "queue": "asyncjobs.integrations.django.queueing",
    "aqueue": "asyncjobs.integrations.django.queueing",
}

DEFAULT_PREFIX = "/api/jobs"


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class JobsASGI:
    """Answers the lifespan protocol with ``jobs``, serves its endpoints (and dashboard),
    passes on the rest."""

    def __init__(
        self,
        jobs: Jobs,
        django_app: Any,
        prefix: str,
        stop_timeout: float = DEFAULT_STOP_TIMEOUT,
        dashboard_prefix: str | None = None,
    ) -> None:
        if not prefix.startswith("/") or prefix == "/":
            raise ValueError(f"prefix must be a path like '/api/jobs', got {prefix!r}")
        self.jobs, self.django_app, self.prefix = jobs, django_app, prefix.rstrip("/")
        self.stop_timeout = stop_timeout
        if dashboard_prefix is not None:
            dashboard = jobs.dashboard_app()
            self.django_app = Prefixed(dashboard_prefix, dashboard, django_app)
        self.endpoints = jobs.asgi_app()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            bridge.remember(self.jobs)  # sync views reach ``jobs`` on this, the server's loop
            await serve_lifespan(self.jobs, receive, send, stop_timeout=self.stop_timeout)
        elif scope["type"] == "http" and self._ours(route_path(scope)):
            root = scope.get("root_path", "") + self.prefix
            await self.endpoints({**scope, "root_path": root}, receive, send)
        else:
            await self.django_app(scope, receive, send)

    def _ours(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")


def asgi(
    jobs: Jobs | None = None,
    django_app: Any = None,
    prefix: str | None = None,
    *,
    stop_timeout: float = DEFAULT_STOP_TIMEOUT,
    dashboard_prefix: str | None = None,
) -> JobsASGI:
    """The ASGI application to serve: Django, plus ``jobs`` started and stopped on lifespan.

    Args:
        jobs: the ``Jobs`` object; ``None`` means :func:`get_jobs`.
        django_app: the Django ASGI app; ``None`` means ``get_asgi_application()``.
        prefix: where the endpoints are served; ``None`` means ``settings.ASYNCJOBS["PREFIX"]``,
            else ``/api/jobs``.
        stop_timeout: seconds running jobs get to finish at shutdown before they are handed
            back (``Jobs.stop(timeout=...)``).
        dashboard_prefix: where the dashboard is served (``asyncjobs[dashboard]``); ``None``
            means ``settings.ASYNCJOBS["DASHBOARD_PREFIX"]``, else no dashboard.
    """
    if django_app is None:
        from django.core.asgi import get_asgi_application

        django_app = get_asgi_application()
    if prefix is None:
        prefix = str(_settings().get("PREFIX", DEFAULT_PREFIX))
    if dashboard_prefix is None:
        dashboard_prefix = _settings().get("DASHBOARD_PREFIX")
    jobs = jobs if jobs is not None else get_jobs()
    return JobsASGI(jobs, django_app, prefix, stop_timeout, dashboard_prefix)
