"""A Django task: ``send_confirmation.enqueue(order.id)`` queues it as an asyncjobs job."""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from integrations.django.models import Order

try:
    from django.tasks import task
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks import task


@task
def send_confirmation(order_id: int) -> dict[str, Any]:
    order = Order.objects.get(pk=order_id)
    order.confirmed_at = timezone.now()  # a real app would send the email here
    order.save(update_fields=["confirmed_at"])
    return {"order": order.pk, "to": order.email}
