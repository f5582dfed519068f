"""Orders in the admin (the jobs are there too, from asyncjobs.integrations.django)."""

from __future__ import annotations

from django.contrib import admin

from integrations.django.models import Order

admin.site.register(Order)
