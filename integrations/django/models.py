"""An order, confirmed by a Django task after it is saved."""

from __future__ import annotations

from django.db import models


class Order(models.Model):
    email = models.EmailField()
    item = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    # The TaskResult id of its confirmation (the asyncjobs job id, as a string).
    confirmation = models.CharField(max_length=64, blank=True)

    def __str__(self) -> str:
        return f"Order {self.pk}: {self.item} for {self.email}"
