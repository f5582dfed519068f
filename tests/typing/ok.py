"""Typed use of asyncjobs that a type checker accepts, with the types it infers."""

from __future__ import annotations

from typing import Any, assert_type

from pydantic import BaseModel

import asyncjobs


class EmailIn(BaseModel):
    to: str
    subject: str


@asyncjobs.task("send-email", input_schema=EmailIn, retries=3)
async def send_email(*, input: EmailIn) -> dict[str, bool]:
    return {"sent": bool(input.to)}


@asyncjobs.task("count", label="a sync task without a schema")
def count(*, input: dict[str, Any], job: asyncjobs.Job) -> dict[str, int]:
    return {"keys": len(input)}


@asyncjobs.workflow("onboard", input_schema=EmailIn, queue="onboarding")
async def onboard(*, input: EmailIn, tasks: Any) -> None:
    await tasks["send-email"]("welcome", input=input)


imported = asyncjobs.Task("imported", "package.module:handler")
steps = asyncjobs.Workflow("steps", [{"id": "1", "task": "count", "input": lambda job: {}}])

assert_type(send_email, asyncjobs.Task[EmailIn, dict[str, bool]])
assert_type(count, asyncjobs.Task[Any, dict[str, int]])
assert_type(onboard, asyncjobs.Workflow[EmailIn, None])
assert_type(imported, asyncjobs.Task[Any, Any])
assert_type(steps, asyncjobs.Workflow[Any, Any])

jobs = asyncjobs.Jobs(tasks=[send_email, count, imported], workflows=[onboard, steps])


async def main() -> None:
    hello = EmailIn(to="ada@example.com", subject="Hi")
    assert_type(await send_email(input=hello), dict[str, bool])
    assert_type(await count(input={"a": 1}), dict[str, int])
    job = await jobs.queue(task=send_email, input=hello)
    assert_type(job, asyncjobs.Job)
    await jobs.queue(task=send_email)
    await jobs.queue(workflow=onboard, input=hello, queue="other")
    await jobs.queue(task=count, input={"anything": "goes"})
    await jobs.queue(task="send-email", input={"to": "ada@example.com", "subject": "Hi"})
    await jobs.queue_many([{"task": send_email, "input": hello}])
