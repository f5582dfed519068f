"""The Django app: ``python manage.py asyncjobs ...`` and the jobs in Django's admin."""

from __future__ import annotations

from django.apps import AppConfig


class AsyncJobsConfig(AppConfig):  # type: ignore[misc]
    """``"asyncjobs.integrations.django"`` in ``INSTALLED_APPS``."""

    name = "asyncjobs.integrations.django"
    label = "asyncjobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"
