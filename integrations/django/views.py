"""Views: queue a greeting from an async or a sync view, and show a job."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET, require_POST

import asyncjobs
from asyncjobs.integrations.django import get_jobs


def bad_input_is_400(view: Callable[..., Any]) -> Callable[..., Any]:
    """asyncjobs refuses bad input (an input it cannot store, an id beyond 64 bits) with a
    ValueError naming the problem (asyncjobs.ValidationError is one): answer 400 with it."""
    if inspect.iscoroutinefunction(view):

        @functools.wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return await view(request, *args, **kwargs)
            except ValueError as exc:
                return JsonResponse({"error": str(exc)}, status=400)

        return async_view

    @functools.wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except ValueError as exc:
            return JsonResponse({"error": str(exc)}, status=400)

    return sync_view


@require_POST
@bad_input_is_400
async def queue_greeting(request: HttpRequest) -> JsonResponse:
    job = await get_jobs().queue(workflow="greet", input={"name": request.GET.get("name", "world")})
    return JsonResponse({"id": job.id, "status": job.status}, status=202)


@require_POST
@bad_input_is_400
def queue_greeting_sync(request: HttpRequest) -> JsonResponse:
    # Django runs sync views in a worker thread; async_to_sync runs the call on the server's
    # event loop, where the Jobs object and its connections live.
    queue = async_to_sync(get_jobs().queue)
    job = queue(workflow="greet", input={"name": request.GET.get("name", "world")})
    return JsonResponse({"id": job.id, "status": job.status}, status=202)


@require_GET
@bad_input_is_400
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
