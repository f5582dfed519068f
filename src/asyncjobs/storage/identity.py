"""Which database a URL or a set of connection parts names, to tell two configurations apart."""

from __future__ import annotations

import os
from urllib.parse import unquote, urlsplit

DEFAULT_HOST = "localhost"
DEFAULT_PORT = 5432
Identity = tuple[str, ...]


def url_identity(url: str) -> Identity | None:
    """What identifies the database of an asyncjobs URL; ``None`` for an in-memory one."""
    scheme, _, rest = url.partition("://")
    if scheme.startswith("sqlite"):
        path = rest[1:].partition("?")[0] if rest.startswith("/") else ""
        return parts_identity("sqlite", unquote(path))
    parts = urlsplit(url)
    return parts_identity("postgresql", unquote(parts.path.lstrip("/")), parts.hostname, parts.port)


def parts_identity(
    kind: str | None, name: str, host: str | None = None, port: int | None = None
) -> Identity | None:
    """The identity of database ``name`` of ``kind`` (``"sqlite"``, ``"postgresql"``)."""
    if kind == "sqlite":
        if name in ("", ":memory:") or name.startswith("file:"):
            return None
        return ("sqlite", os.path.realpath(os.path.expanduser(name)))
    if kind == "postgresql":
        return ("postgresql", host or DEFAULT_HOST, str(port or DEFAULT_PORT), name)
    return None
