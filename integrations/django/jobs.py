"""The example's tasks, workflow and ``Jobs`` object (named in ``settings.ASYNCJOBS``)."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel

import asyncjobs


class Greeting(BaseModel):
    name: str


@asyncjobs.task("make-greeting", input_schema=Greeting, retries=2)
async def make_greeting(*, input: Greeting) -> dict[str, str]:
    return {"text": f"Hello, {input.name}!"}


async def shout(*, input: dict[str, str]) -> dict[str, str]:
    return {"text": input["text"].upper()}


@asyncjobs.workflow("greet", input_schema=Greeting)
async def greet(*, input: Greeting, tasks: Any, inline_task: Any) -> None:
    greeting = await tasks["make-greeting"]("make", input={"name": input.name})
    await inline_task("shout", task=shout, input=greeting)


def auto_run_enabled(jobs: asyncjobs.Jobs) -> bool:
    return os.environ.get("ASYNCJOBS_AUTO_RUN", "1").lower() not in ("0", "false", "no")


jobs = asyncjobs.Jobs(
    tasks=[make_greeting],
    workflows=[greet],
    secret=os.environ.get("ASYNCJOBS_SECRET"),
    auto_run=[asyncjobs.AutoRun(cron="* * * * * *")],  # every second, and at once on queue
    should_auto_run=auto_run_enabled,
    delete_job_on_complete=False,  # keep finished jobs so that /jobs/<id> can show them
)
