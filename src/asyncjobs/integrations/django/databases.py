"""Whether asyncjobs' database is one of Django's: the same SQLite file, or the same PostgreSQL
host, port and database name."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5432
Identity = tuple[str, ...]


def django_alias(database_url: str) -> str | None:
    """The alias in ``settings.DATABASES`` naming the database at ``database_url``, if any."""
    from django.conf import settings

    wanted = url_identity(database_url)
    if wanted is None:
        return None
    for alias, config in settings.DATABASES.items():
        if django_identity(config) == wanted:
            return str(alias)
    return None


def url_identity(url: str) -> Identity | None:
    """What identifies the database of an asyncjobs URL; ``None`` for an in-memory one."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        path = rest[1:].partition("?")[0] if rest.startswith("/") else ""
        return _sqlite(unquote(path))
    parts = urlsplit(url)
    return _postgres(parts.hostname, parts.port, unquote(parts.path.lstrip("/")))


def django_identity(config: Mapping[str, Any]) -> Identity | None:
    """What identifies the database of one ``settings.DATABASES`` entry."""
    engine = str(config.get("ENGINE", ""))
    name = str(config.get("NAME") or "")
    if engine.endswith("sqlite3"):
        return _sqlite(name)
    if "postgres" in engine or "postgis" in engine:
        port = config.get("PORT")
        return _postgres(config.get("HOST"), int(port) if port else None, name)
    return None


def _sqlite(path: str) -> Identity | None:
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return ("sqlite", os.path.realpath(os.path.expanduser(path)))


def _postgres(host: str | None, port: int | None, name: str) -> Identity:
    return ("postgresql", host or DEFAULT_HOST, str(port or DEFAULT_PORT), name)
