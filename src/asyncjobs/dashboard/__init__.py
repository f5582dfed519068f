"""The dashboard: queues, jobs and schedules in a browser, served by ``Jobs.dashboard_app()``.

Its modules import Starlette and Jinja2 (``asyncjobs[dashboard]``); nothing outside this
package imports them, so ``import asyncjobs`` works without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncjobs.dashboard.app import DashboardApp
    from asyncjobs.dashboard.host import DashboardHost

EXTRA_HINT = "pip install 'asyncjobs[dashboard]'"


def dashboard_app(jobs: DashboardHost) -> DashboardApp:
    """``Jobs.dashboard_app()``: the jobs in a browser, as an ASGI app.

    Viewing needs ``Access.dashboard(request)`` or HTTP Basic auth whose password is the
    secret; retry and run now also need ``Access.run``, cancel ``Access.cancel`` (or the
    secret).

    Raises:
        ImportError: Starlette or Jinja2 is missing; the message says how to install them.
    """
    try:
        from asyncjobs.dashboard.app import DashboardApp
    except ImportError as exc:
        if exc.name not in ("starlette", "jinja2"):
            raise
        raise ImportError(f"the dashboard needs {exc.name}: {EXTRA_HINT}", name=exc.name) from exc
    return DashboardApp(jobs)
