"""asyncjobs in Django: a view queues a workflow, autoRun runs it, another view shows it.

Run from the repository root::

    uvicorn integrations.django.asgi:application

    curl -X POST 'localhost:8000/greetings?name=Ada'       # async view: {"id": 1, ...}
    curl -X POST 'localhost:8000/greetings-sync?name=Bo'   # sync view, same answer
    curl localhost:8000/jobs/1                            # status, output and step log
    curl -H "Authorization: Bearer $ASYNCJOBS_SECRET" localhost:8000/api/jobs/run
    open http://localhost:8000/dashboard/                 # signed in to /admin/ as staff

Environment: ``ASYNCJOBS_DATABASE_URL`` (default ``sqlite+aiosqlite:///asyncjobs.db``),
``ASYNCJOBS_SECRET`` (the bearer secret of ``/api/jobs/*``), ``ASYNCJOBS_AUTO_RUN=0`` for an
instance that only serves and queues while another one runs the jobs.
"""

from __future__ import annotations

import os

from asyncjobs.integrations.django import asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "integrations.django.settings")

# Django for every path, except /api/jobs/* and the dashboard (settings.ASYNCJOBS's
# "DASHBOARD_PREFIX", /dashboard/); jobs start and stop with the ASGI lifespan.
application = asgi()
