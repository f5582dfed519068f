"""Whether asyncjobs' database is one of Django's: the same SQLite file, or the same PostgreSQL
host, port and database name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from asyncjobs.storage.identity import Identity, parts_identity, url_identity

# The last part of a Django ENGINE path, and the kind of database it talks to.
ENGINE_KINDS = {
    "sqlite3": "sqlite",
    "spatialite": "sqlite",
    "postgresql": "postgresql",
    "postgresql_psycopg2": "postgresql",
    "postgis": "postgresql",
}


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


def django_identity(config: Mapping[str, Any]) -> Identity | None:
    """What identifies the database of one ``settings.DATABASES`` entry."""
    kind = ENGINE_KINDS.get(str(config.get("ENGINE", "")).rsplit(".", 1)[-1])
    port = config.get("PORT")
    return parts_identity(
        kind, str(config.get("NAME") or ""), config.get("HOST") or None, int(port) if port else None
    )
