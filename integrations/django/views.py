"""Views: queue a greeting from an async or a sync view, and show a job."""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_GET, require_POST

import asyncjobs
from asyncjobs.integrations.django import get_jobs


@require_POST
async def queue_greeting(request: HttpRequest) -> JsonResponse:
    job = await get_jobs().queue(workflow="greet", input={"name": request.GET.get("name", "world")})
    return JsonResponse({"id": job.id, "status": job.status}, status=202)


@require_POST
def queue_greeting_sync(request: HttpRequest) -> JsonResponse:
    # Django runs sync views in a worker thread; async_to_sync runs the call on the server's
    # event loop, where the Jobs object and its connections live.
    queue = async_to_sync(get_jobs().queue)
    job = queue(workflow="greet", input={"name": request.GET.get("name", "world")})
    return JsonResponse({"id": job.id, "status": job.status}, status=202)


@require_GET
async def show_job(request: HttpRequest, id: int) -> JsonResponse:
    job = await get_jobs().get(id)
    if job is None:
        return JsonResponse({"error": "no such job"}, status=404)
    return JsonResponse(describe(job))


def describe(job: asyncjobs.Job) -> dict[str, Any]:
    log = [
        entry.model_dump(mode="json", include={"task_slug", "task_id", "state", "output"})
        for entry in job.log
    ]
    return {"id": job.id, "status": job.status, "input": job.input, "log": log}
