"""Drive the ASGI lifespan protocol by hand, as a server would."""

from __future__ import annotations

import contextlib
from typing import Any

import anyio


async def lifespan_messages(app: Any, *phases: str) -> list[dict[str, Any]]:
    """Drive the lifespan protocol through ``phases`` and return what the app sent."""
    sent: list[dict[str, Any]] = []
    inbox_send, inbox = anyio.create_memory_object_stream[dict[str, Any]](10)
    outbox, outbox_receive = anyio.create_memory_object_stream[dict[str, Any]](10)

    async def send(message: Any) -> None:
        await outbox.send(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    async with inbox_send, inbox, outbox, outbox_receive, anyio.create_task_group() as tg:
        tg.start_soon(_swallow, app, scope, inbox.receive, send)
        for phase in phases:
            await inbox_send.send({"type": f"lifespan.{phase}"})
            sent.append(await outbox_receive.receive())
    return sent


async def _swallow(app: Any, scope: Any, receive: Any, send: Any) -> None:
    # A failed startup is reported and then re-raised, as servers expect.
    with contextlib.suppress(Exception):
        await app(scope, receive, send)
