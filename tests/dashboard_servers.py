"""The dashboard mounted in each framework, for the framework tests' real servers.

Only the servers import this module: it configures Django (the example project's settings).
"""

from __future__ import annotations

import os

from quart import Quart
from starlette.applications import Starlette

from asyncjobs.integrations import django as django_adapter
from asyncjobs.integrations.quart import init_app
from asyncjobs.integrations.starlette import lifespan, mount, mount_dashboard
from tests.dashboard_jobs import PREFIX, jobs

starlette_app = Starlette(
    routes=[mount(jobs), mount_dashboard(jobs, PREFIX)], lifespan=lifespan(jobs)
)

quart_app = Quart(__name__)
init_app(quart_app, jobs, dashboard_prefix=PREFIX)


def _django() -> django_adapter.JobsASGI:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations.django.settings")
    return django_adapter.asgi(jobs, dashboard_prefix=PREFIX)


django_app = _django()
