"""URLs of the example project; /api/jobs/* is served by the asyncjobs ASGI wrapper."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from integrations.django import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("orders", views.place_order),
    path("orders/<int:id>", views.show_order),
    path("greetings", views.queue_greeting),
    path("greetings-sync", views.queue_greeting_sync),
    path("jobs/<int:id>", views.show_job),
]
