"""Views of the in-process Django tests that queue jobs inside their own transaction."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from integrations.django.models import Order

from asyncjobs.integrations.django import aqueue, queue


def _order_and_job(request: HttpRequest) -> JsonResponse:
    with transaction.atomic(using=request.GET["using"]):
        order = Order.objects.using(request.GET["using"]).create(email="a@example.com", item="tea")
        job = queue(task="plain", input={"order": order.pk}, using=request.GET["using"])
        if request.GET.get("fail"):
            raise RuntimeError("the view failed after queueing")
    return JsonResponse({"order": order.pk, "job": job.id})


def sync_view(request: HttpRequest) -> JsonResponse:
    return _order_and_job(request)


async def async_view(request: HttpRequest) -> JsonResponse:
    # Django's transactions are sync: the atomic block runs in Django's sync thread.
    return await sync_to_async(_order_and_job)(request)


async def async_queue_view(request: HttpRequest) -> JsonResponse:
    job = await aqueue(task="plain", input={"from": "aqueue"}, using=request.GET["using"])
    return JsonResponse({"job": job.id, "status": job.status})


urlpatterns = [
    path("sync", sync_view),
    path("async", async_view),
    path("aqueue", async_queue_view),
]
