"""The jobs table as a Django model, read-only, for the admin (asyncjobs owns the table)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import models
from django.utils import timezone

from asyncjobs.checks import MAX_KEY_LENGTH, MAX_NAME_LENGTH
from asyncjobs.models import JobStatusName, job_status

TABLE = "asyncjobs_jobs"


class Job(models.Model):  # type: ignore[misc]
    """One row of asyncjobs' jobs table; Django never creates, migrates or writes it."""

    id = models.BigAutoField(primary_key=True)
    queue = models.CharField(max_length=MAX_NAME_LENGTH)
    task_slug = models.CharField(max_length=MAX_NAME_LENGTH, null=True)
    workflow_slug = models.CharField(max_length=MAX_NAME_LENGTH, null=True)
    input = models.JSONField(default=dict)
    meta = models.JSONField(default=dict)
    wait_until = models.DateTimeField(null=True)
    processing_until = models.DateTimeField(null=True)
    completed_at = models.DateTimeField(null=True)
    has_error = models.BooleanField(default=False)
    error = models.JSONField(null=True)
    total_tried = models.IntegerField(default=0)
    log = models.JSONField(null=True)
    concurrency_key = models.CharField(max_length=MAX_KEY_LENGTH, null=True)
    priority = models.IntegerField(default=0)
    created_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    parent_id = models.BigIntegerField(null=True)
    suspended = models.BooleanField(null=True)

    class Meta:
        managed = False
        db_table = TABLE
        ordering = ("-id",)

    def __str__(self) -> str:
        return f"Job {self.id} ({self.slug})"

    @property
    def slug(self) -> str:
        return self.workflow_slug or self.task_slug or ""

    def status(self, now: datetime | None = None) -> JobStatusName:
        values: dict[str, Any] = {
            f.attname: _utc(getattr(self, f.attname)) for f in self._meta.fields
        }
        return job_status(values, now or timezone.now())


def _utc(value: Any) -> Any:
    """Times as aware UTC, also in a project with ``USE_TZ = False`` (asyncjobs stores UTC)."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
