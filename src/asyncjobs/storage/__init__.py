"""Persistence: the only package that imports SQLAlchemy or a database driver.

``store_for(url)`` is the one place that picks a backend by the URL's dialect.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

from asyncjobs.storage.base import (
    Claim,
    Row,
    ScheduledTick,
    Selection,
    Store,
    cancelled_error,
    cancelled_values,
)
from asyncjobs.storage.common import SqlStore

__all__ = [
    "Claim",
    "Row",
    "ScheduledTick",
    "Selection",
    "SqlStore",
    "Store",
    "cancelled_error",
    "cancelled_values",
    "missing_database",
    "store_for",
]


def store_for(url: str) -> SqlStore:
    """The store for ``url``'s backend; an unsupported URL fails at ``open()`` (a
    ``ValueError`` naming it), as the engine would."""
    backend = _backend(url)
    if backend == "sqlite":
        from asyncjobs.storage.sqlite import SqliteStore

        return SqliteStore(url)
    if backend == "postgresql":
        from asyncjobs.storage.postgres import PostgresStore

        return PostgresStore(url)
    return SqlStore(url)


def missing_database(url: str) -> str | None:
    """Where ``url``'s database would be created by opening it (a SQLite file that does not
    exist yet), so that inspecting a mistyped path leaves nothing behind; ``None`` when it
    exists or the server keeps it."""
    if _backend(url) != "sqlite":
        return None
    from asyncjobs.storage.sqlite import missing_file

    return missing_file(url)


def _backend(url: str) -> str:
    return make_url(url).get_backend_name()
