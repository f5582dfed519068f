"""The Django app: ``python manage.py asyncjobs ...``, the jobs in Django's admin, and
asyncjobs' tables created by ``migrate`` when asyncjobs uses that Django database."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AsyncJobsConfig(AppConfig):  # type: ignore[misc]
    """``"asyncjobs.integrations.django"`` in ``INSTALLED_APPS``."""

    name = "asyncjobs.integrations.django"
    label = "asyncjobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        post_migrate.connect(_create_tables, sender=self)


def _create_tables(using: str, **kwargs: Any) -> None:
    """Open the ``Jobs`` once when it uses the migrated database: its tables then exist
    before any request queues a job inside ``atomic()`` (which on SQLite holds the write
    lock that creating them needs)."""
    from asyncjobs.integrations.django import bridge
    from asyncjobs.integrations.django.databases import django_alias
    from asyncjobs.integrations.django.loading import get_jobs

    try:
        jobs = get_jobs()
    except (ValueError, ImportError):
        return  # no Jobs configured: nothing to create
    if django_alias(jobs.database_url) == using:
        bridge.call(jobs, jobs.start, auto_run=False)
        bridge.release(jobs)  # closed again unless a server's loop hosts it
