"""Settings of the example Django project: orders, a Django task run by asyncjobs, the admin."""

from __future__ import annotations

import importlib.util
import os

from integrations.django.database import DATABASE_URL, django_database

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "example-only-not-a-secret")
DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver"]
ROOT_URLCONF = "integrations.django.urls"
WSGI_APPLICATION = "integrations.django.wsgi.application"
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Django 6 has django.tasks; on Django 5.2 the django-tasks backport provides it.
TASKS_BACKPORT = ["django_tasks"] if importlib.util.find_spec("django.tasks") is None else []

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    *TASKS_BACKPORT,
    "asyncjobs.integrations.django",  # manage.py asyncjobs, and the jobs in the admin
    "integrations.django.apps.ExampleConfig",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {"default": django_database(DATABASE_URL)}

ASYNCJOBS = {
    "JOBS": "integrations.django.jobs:jobs",  # the Jobs object, as "module:attr"
    "PREFIX": "/api/jobs",  # GET /api/jobs/run and GET /api/jobs/handle-schedules
    "DASHBOARD_PREFIX": "/dashboard",  # the dashboard, for staff members (jobs.py)
}

# Django's @task functions run as asyncjobs jobs (of the "django-task" task in jobs.py).
TASKS = {
    "default": {
        "BACKEND": "asyncjobs.integrations.django.TasksBackend",
        "QUEUES": ["default"],
    }
}
