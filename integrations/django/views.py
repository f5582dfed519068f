"""Views: place an order (a Django task confirms it), queue a greeting, show a job."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from asgiref.sync import async_to_sync
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

import asyncjobs
from asyncjobs.integrations.django import get_jobs
from integrations.django.models import Order
from integrations.django.tasks import send_confirmation


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


@csrf_exempt  # an API for the example's curl calls
@require_POST
def place_order(request: HttpRequest) -> JsonResponse:
    # One transaction: the confirmation job commits with the order (its runner is woken on
    # commit, so it always finds the order), and if the view fails, neither exists.
    with transaction.atomic():
        order = Order.objects.create(
            email=request.POST.get("email", "ada@example.com"),
            item=request.POST.get("item", "tea"),
        )
        result = send_confirmation.enqueue(order.pk)
        order.confirmation = result.id
        order.save(update_fields=["confirmation"])
    return JsonResponse({"order": order.pk, "task": result.id}, status=201)


@require_GET
async def show_order(request: HttpRequest, id: int) -> JsonResponse:
    order = await Order.objects.filter(pk=id).afirst()
    if order is None:
        return JsonResponse({"error": "no such order"}, status=404)
    result = await send_confirmation.aget_result(order.confirmation)
    task = {"id": result.id, "status": result.status, "attempts": result.attempts}
    if result.status == "SUCCESSFUL":
        task["return_value"] = result.return_value
    return JsonResponse(
        {"order": order.pk, "confirmed": order.confirmed_at is not None, "task": task}
    )


@csrf_exempt
@require_POST
@bad_input_is_400
async def queue_greeting(request: HttpRequest) -> JsonResponse:
    job = await get_jobs().queue(workflow="greet", input={"name": request.GET.get("name", "world")})
    return JsonResponse({"id": job.id, "status": job.status}, status=202)


@csrf_exempt
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
    return {
        "id": job.id,
        "status": job.status,
        "input": job.input,
        "output": job.output,
        "log": log,
    }
