"""Database URL forms users write, and the async driver URL each one means."""

from __future__ import annotations

import re

# Prefix as written -> prefix meant. SQLite URLs need their third slash (a path or nothing
# after it); "sqlite+aiosqlite://" alone is an in-memory database, as in SQLAlchemy.
_FORMS = (
    ("postgresql+asyncpg://", "postgresql+asyncpg://"),
    ("postgresql://", "postgresql+asyncpg://"),
    ("postgres://", "postgresql+asyncpg://"),
    ("sqlite+aiosqlite:///", "sqlite+aiosqlite:///"),
    ("sqlite:///", "sqlite+aiosqlite:///"),
)
_EXACT = {"sqlite+aiosqlite://": "sqlite+aiosqlite://"}
SUPPORTED = "postgresql://, postgres://, postgresql+asyncpg://, sqlite:/// or sqlite+aiosqlite:///"
_PASSWORD = re.compile(r"(://[^:/@]*):[^@/]*@")


def driver_url(url: object) -> str:
    """The URL asyncjobs opens for ``url``: PostgreSQL on asyncpg, SQLite on aiosqlite.

    Raises:
        TypeError: ``url`` is not a string.
        ValueError: any other form, naming the supported ones.
    """
    if not isinstance(url, str):
        raise TypeError(f"database_url must be a str, got {type(url).__name__}")
    if url in _EXACT:
        return _EXACT[url]
    for written, meant in _FORMS:
        if url.startswith(written):
            return meant + url[len(written) :]
    raise ValueError(
        f"unsupported database_url {hide_password(url)!r}: use {SUPPORTED} "
        "(e.g. postgresql://user@host/db or sqlite:///jobs.db)"
    )


def hide_password(url: str) -> str:
    """``url`` with its password, if any, replaced by ``***``."""
    return _PASSWORD.sub(r"\1:***@", url)
