"""Time limits on handlers: an attempt that runs past its ``timeout`` fails with ``TimeoutError``.

Limits are elapsed real time (the event loop's clock), not the injected clock: a handler
stuck on I/O is what they end. Only the limit's own scope turns into ``TimeoutError``; a
stop, a cancel or a lost lease cancels an outer scope, which this scope lets through.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import anyio

T = TypeVar("T")


async def limited(call: Awaitable[T], limit: float | None, what: str) -> T:
    """Await ``call``; past ``limit`` seconds it is cancelled and ``TimeoutError`` raised.

    A sync handler's thread cannot be interrupted: ``call`` abandons it (its later result is
    discarded) when cancelled, so the attempt fails at the limit all the same.
    """
    if limit is None:
        return await call
    with anyio.move_on_after(limit):
        return await call
    # Only a cancellation of this scope, at the limit, ends up here.
    raise TimeoutError(f"{what} timed out after {limit:g} s")
