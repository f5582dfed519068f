"""The jobs in Django's admin: list with filters, a job page with its step log, retry/cancel.

Registered only when asyncjobs' database is one of Django's (``settings.DATABASES``); the
admin reads the table through that alias and changes jobs only through the ``Jobs`` API.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from django.contrib import admin, messages
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from asyncjobs.integrations.django import bridge
from asyncjobs.integrations.django.databases import django_alias
from asyncjobs.integrations.django.loading import _settings, get_jobs
from asyncjobs.integrations.django.models import Job
from asyncjobs.jobs import Jobs
from asyncjobs.storage.filters import STATUSES


def status_q(status: str, now: datetime) -> Q:
    """``Job.status`` as a query, like the store's own status filter."""
    unfinished = Q(completed_at__isnull=True, has_error=False)
    lease_free = Q(processing_until__isnull=True) | Q(processing_until__lte=now)
    cancelled = Q(error__cancelled=True)
    return {
        "cancelled": Q(has_error=True) & cancelled,
        "failed": Q(has_error=True) & (Q(error__isnull=True) | ~cancelled),
        "completed": Q(has_error=False, completed_at__isnull=False),
        "processing": unfinished & Q(processing_until__gt=now),
        "waiting": unfinished & lease_free & Q(wait_until__gt=now) & ~Q(suspended=True),
        "suspended": unfinished & lease_free & Q(wait_until__gt=now, suspended=True),
        "queued": unfinished & lease_free & (Q(wait_until__isnull=True) | Q(wait_until__lte=now)),
    }[status]


class StatusFilter(admin.SimpleListFilter):  # type: ignore[misc]
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in STATUSES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.value() not in STATUSES:
            return queryset
        return queryset.filter(status_q(str(self.value()), timezone.now()))


class SlugFilter(admin.SimpleListFilter):  # type: ignore[misc]
    title = "task or workflow"
    parameter_name = "slug"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        rows = model_admin.get_queryset(request).values_list("workflow_slug", "task_slug")
        slugs = sorted({workflow or task for workflow, task in rows.distinct() if workflow or task})
        return [(slug, slug) for slug in slugs]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Job]) -> QuerySet[Job]:
        slug = self.value()
        if not slug:
            return queryset
        return queryset.filter(
            Q(workflow_slug=slug) | Q(workflow_slug__isnull=True, task_slug=slug)
        )


async def _retry(jobs: Jobs, id: int) -> bool:
    return await jobs.retry_by_id(id)


async def _cancel(jobs: Jobs, id: int) -> bool:
    return await jobs.cancel_by_id(id)


class JobAdmin(admin.ModelAdmin):  # type: ignore[misc]
    list_display = ("id", "slug", "queue", "status", "total_tried", "created_at", "updated_at")
    list_filter = (StatusFilter, "queue", SlugFilter)
    search_fields = ("=id",)
    actions = ("retry_jobs", "cancel_jobs")
    fields = (
        "id", "slug", "queue", "status", "total_tried", "created_at", "updated_at",
        "wait_until", "processing_until", "completed_at", "concurrency_key",
        "pretty_input", "pretty_meta", "pretty_error", "step_log",
    )  # fmt: skip
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Job]:
        return super().get_queryset(request).using(jobs_alias())

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Job | None = None) -> bool:
        # Jobs change only through retry and cancel (the list's actions), never by editing.
        return obj is None and bool(super().has_change_permission(request, obj))

    @admin.display(description="status")
    def status(self, obj: Job) -> str:
        return obj.status()

    @admin.display(description="task or workflow")
    def slug(self, obj: Job) -> str:
        return obj.slug

    @admin.display(description="input")
    def pretty_input(self, obj: Job) -> str:
        return _json(obj.input)

    @admin.display(description="meta")
    def pretty_meta(self, obj: Job) -> str:
        return _json(obj.meta)

    @admin.display(description="error")
    def pretty_error(self, obj: Job) -> str:
        return _json(obj.error) if obj.error else "-"

    @admin.display(description="step log")
    def step_log(self, obj: Job) -> str:
        entries: list[dict[str, Any]] = obj.log or []
        if not entries:
            return "no step has run yet"
        rows = format_html_join("", "<tr>{}</tr>", ((_log_row(entry),) for entry in entries))
        head = format_html_join("", "<th>{}</th>", ((name,) for name in LOG_COLUMNS))
        return format_html("<table><tr>{}</tr>{}</table>", head, rows)

    @admin.action(description="Retry the selected failed or cancelled jobs", permissions=["change"])
    def retry_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, "retried", _retry)

    @admin.action(description="Cancel the selected unfinished jobs", permissions=["change"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[Job]) -> None:
        self._each(request, queryset, "cancelled", _cancel)

    def _each(
        self,
        request: HttpRequest,
        queryset: QuerySet[Job],
        verb: str,
        call: Callable[[Jobs, int], Awaitable[bool]],
    ) -> None:
        """``call(jobs, id)`` for each selected job, through the ``Jobs`` API."""
        jobs = get_jobs()
        ids = list(queryset.values_list("id", flat=True))
        done = [i for i in ids if bridge.call(jobs, call, jobs, i)]
        self.message_user(request, f"{verb.capitalize()} {len(done)} of {len(ids)} jobs.")
        if len(done) < len(ids):
            skipped = ", ".join(str(i) for i in ids if i not in done)
            message = f"Not {verb}: {skipped} (not in a state that allows it)."
            self.message_user(request, message, level=messages.WARNING)


LOG_COLUMNS = ("started", "step", "id", "state", "seconds", "output or error")


def _log_row(entry: dict[str, Any]) -> str:
    started, finished = entry.get("executed_at", ""), entry.get("completed_at", "")
    error = entry.get("error") or {}
    detail = error.get("message") if entry.get("state") == "failed" else entry.get("output")
    cells = (started, entry.get("task_slug"), entry.get("task_id"), entry.get("state"),
             _seconds(started, finished), _text(detail))  # fmt: skip
    return format_html_join("", "<td>{}</td>", ((cell,) for cell in cells))


def _seconds(started: str, finished: str) -> str:
    try:
        delta = datetime.fromisoformat(finished) - datetime.fromisoformat(started)
    except (TypeError, ValueError):
        return ""
    return f"{delta.total_seconds():.3f}"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _json(value)


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def jobs_alias() -> str:
    """The Django database alias asyncjobs' database is, ``"default"`` when none is."""
    return django_alias(get_jobs().database_url) or "default"


def register(site: admin.AdminSite) -> bool:
    """Show the jobs on ``site`` when asyncjobs' database is one of Django's; whether it did."""
    if not _settings().get("JOBS"):
        return False  # no asyncjobs here: nothing to show
    if django_alias(get_jobs().database_url) is None:
        return False  # asyncjobs has a database of its own, which Django cannot read
    site.register(Job, JobAdmin)
    return True


register(admin.site)
