"""The example's own Django app (its label keeps it apart from Django's own packages)."""

from __future__ import annotations

from django.apps import AppConfig


class ExampleConfig(AppConfig):
    name = "integrations.django"
    label = "example"
    verbose_name = "Example shop"
