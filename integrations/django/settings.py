"""Settings of the example Django project; Django itself needs no database here."""

from __future__ import annotations

import os
from typing import Any

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "integrations.django.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
DATABASES: dict[str, Any] = {}
USE_TZ = True

ASYNCJOBS = {
    "JOBS": "integrations.django.jobs:jobs",  # the Jobs object, as "module:attr"
    "PREFIX": "/api/jobs",  # GET /api/jobs/run and GET /api/jobs/handle-schedules
}
