"""Typed use of asyncjobs with mistakes: each line marked `# error` must be flagged."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import asyncjobs


class EmailIn(BaseModel):
    to: str


class OrderIn(BaseModel):
    order: int


@asyncjobs.task("send-email", input_schema=EmailIn)
async def send_email(*, input: EmailIn) -> dict[str, bool]:
    return {"sent": True}


@asyncjobs.workflow("ship", input_schema=OrderIn)
async def ship(*, input: OrderIn, tasks: Any) -> None:
    return None


@asyncjobs.task("count")  # error
async def count() -> int:  # a task returns a dict, a pydantic model or None
    return 1


jobs = asyncjobs.Jobs(tasks=[send_email], workflows=[ship])


async def main() -> None:
    await jobs.queue(task=send_email, input=OrderIn(order=1))  # error
    await jobs.queue(task=send_email, input={"to": "ada@example.com"})  # error
    await jobs.queue(task=send_email, input="ada@example.com")  # error
    await jobs.queue(workflow=ship, input=EmailIn(to="ada@example.com"))  # error
    await send_email(input=OrderIn(order=1))  # error
    await send_email(inputs=EmailIn(to="x"))  # error
    sent: dict[str, str] = await send_email(input=EmailIn(to="x"))  # error
    print(sent)
    asyncjobs.task("x", retry=3)  # error
    asyncjobs.Task("x", send_email.handler, queue="q")  # error
