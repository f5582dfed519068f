"""One database for the example: Django's models and asyncjobs' jobs share it.

``ASYNCJOBS_DATABASE_URL`` names it (default: ``example.sqlite3`` in the current directory);
Django's ``DATABASES["default"]`` is built from the same URL, so the admin shows the jobs.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import unquote, urlsplit

DATABASE_URL = os.environ.get("ASYNCJOBS_DATABASE_URL") or "sqlite:///example.sqlite3"


def django_database(url: str) -> dict[str, Any]:
    """The ``settings.DATABASES`` entry for an asyncjobs database URL."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": unquote(rest[1:].partition("?")[0]),
            # Django and asyncjobs write the same file: wait for each other's locks, and
            # take the write lock up front so two writers never deadlock.
            "OPTIONS": {
                "timeout": 20,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    parts = urlsplit(url)
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }
