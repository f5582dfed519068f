"""A Django task: ``send_confirmation.enqueue(order.id)`` queues it as an asyncjobs job."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from asyncjobs import Backoff
from asyncjobs.integrations.django import options
from integrations.django.models import Order

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@task
# asyncjobs' own options for this task: 3 retries, 1 s, 2 s, 4 s apart; one run per order at once.
@options(
    retries=3,
    backoff=Backoff(type="exponential", delay=1),
    concurrency=lambda order_id: f"order-{order_id}",
)
def send_confirmation(order_id: int) -> dict[str, Any]:
    order = Order.objects.get(pk=order_id)
    order.confirmed_at = timezone.now()  # a real app would send the email here
    order.save(update_fields=["confirmed_at"])
    return {"order": order.pk, "to": order.email}
