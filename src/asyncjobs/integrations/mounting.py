"""Serving an ASGI app under a path prefix of another app (the dashboard in Django, Quart)."""

from __future__ import annotations

from typing import Any

from asyncjobs.asgi import Receive, Scope, Send, route_path


def check_prefix(prefix: str, name: str = "prefix") -> str:
    """``prefix`` without a trailing slash.

    Raises:
        ValueError: it is not a path below the root, like ``/jobs``.
    """
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.strip("/") == "":
        raise ValueError(f"{name} must be a path like '/jobs', got {prefix!r}")
    return prefix.rstrip("/")


class Prefixed:
    """Sends HTTP requests under ``prefix`` to ``app`` (with ``root_path`` extended, as
    Starlette's ``Mount`` does) and everything else to ``other``."""

    def __init__(self, prefix: str, app: Any, other: Any) -> None:
        self.prefix, self.app, self.other = check_prefix(prefix), app, other

    def matches(self, scope: Scope) -> bool:
        if scope["type"] != "http":
            return False
        path = route_path(scope)
        return path == self.prefix or path.startswith(self.prefix + "/")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.matches(scope):
            root = scope.get("root_path", "") + self.prefix
            await self.app({**scope, "root_path": root}, receive, send)
        else:
            await self.other(scope, receive, send)
