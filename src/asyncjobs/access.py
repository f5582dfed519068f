"""Who may call: ``Access``, the callables asked for calls made with ``override_access=False``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from asyncjobs.errors import Forbidden
from asyncjobs.injection import call, check_injectable

AccessCheck = Callable[..., bool | Awaitable[bool]]


@dataclass(frozen=True, kw_only=True)
class Access:
    """Callables ``(request) -> bool`` asked for calls made with ``override_access=False``.

    Only ``True`` (or an awaitable resolving to ``True``) approves: ``"false"``, ``1`` or
    ``{"allowed": False}`` refuse, like ``False`` and ``None``.

    ``dashboard`` approves viewing the dashboard; its actions also need ``run`` (retry,
    run now) or ``cancel``.
    """

    run: AccessCheck | None = None
    queue: AccessCheck | None = None
    cancel: AccessCheck | None = None
    dashboard: AccessCheck | None = None

    def __post_init__(self) -> None:
        for name in ("run", "queue", "cancel", "dashboard"):
            fn = getattr(self, name)
            if fn is not None:
                check_injectable(fn, {"request"}, f"Access.{name}")

    async def approves(self, kind: str, request: Any) -> bool:
        """Whether the ``kind`` callable (``"run"``, ``"queue"``...) answers ``True``."""
        check = getattr(self, kind, None)
        return check is not None and await call(check, {"request": request}) is True


async def check_access(
    access: Access | None, kind: str, override_access: bool, request: Any
) -> None:
    """Refuse a call made with ``override_access=False`` unless ``access`` approves it.

    Raises:
        Forbidden: naming ``kind``.
    """
    if override_access:
        return
    if access is None or not await access.approves(kind, request):
        raise Forbidden(f"access to {kind} was refused")
