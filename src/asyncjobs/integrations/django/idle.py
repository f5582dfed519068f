"""The one warning for a process that queues jobs while nothing in it runs them."""

from __future__ import annotations

import logging
import sys
import threading

from asyncjobs.integrations.django import bridge
from asyncjobs.integrations.django.runner import running_a_job
from asyncjobs.jobs import Jobs
from asyncjobs.models import Job

logger = logging.getLogger("asyncjobs.integrations.django")
_lock = threading.Lock()
_warned = False

MESSAGE = (
    "asyncjobs: job %s was queued, but nothing in this process runs jobs: the server never "
    "ran the ASGI lifespan that starts them (WSGI servers, `manage.py runserver` included, "
    "have none). Unless another process runs them, jobs will wait forever. Run them with an "
    "ASGI server serving `application = asyncjobs.integrations.django.asgi()` (e.g. `uvicorn "
    "myproject.asgi:application`), or with a worker: "
    '`python manage.py asyncjobs run --cron "* * * * *"`. (Said once per process.)'
)


def check_runs_here(jobs: Jobs, job: Job) -> None:
    """Warn once per process when ``job`` was queued where no server loop runs ``jobs``."""
    global _warned
    if _warned or running_a_job.get() or _hosted(jobs):
        return
    with _lock:
        if _warned:
            return
        _warned = True
    logger.warning(MESSAGE, job.id, extra={"job_id": job.id, "queue": job.queue})
    if not _handled(logger):  # a development server whose logging nobody configured
        print(MESSAGE % job.id, file=sys.stderr)


def _handled(log: logging.Logger | None) -> bool:
    """Whether a record of ``log`` reaches a handler that writes it somewhere."""
    while log is not None:
        if any(not isinstance(h, logging.NullHandler) for h in log.handlers):
            return True
        log = log.parent if log.propagate else None
    return False


def _hosted(jobs: Jobs) -> bool:
    """Started by an ASGI lifespan, or run by a worker, on a loop of this process."""
    return bridge.home(jobs) is not None and not bridge.on_own_loop(jobs)
