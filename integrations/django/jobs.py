"""The example's tasks, workflow and ``Jobs`` object (named in ``settings.ASYNCJOBS``).

This module imports Django models, so the ``asyncjobs`` command line sets Django up first
(it does when ``DJANGO_SETTINGS_MODULE`` is set; ``manage.py asyncjobs`` always has).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel

import asyncjobs
from asyncjobs.integrations.django import staff_user, task_runner
from integrations.django.database import DATABASE_URL
from integrations.django.models import Order


class Greeting(BaseModel):
    name: str


@asyncjobs.task("make-greeting", input_schema=Greeting, retries=2)
async def make_greeting(*, input: Greeting) -> dict[str, str]:
    return {"text": f"Hello, {input.name}!"}


async def shout(*, input: dict[str, str]) -> dict[str, str]:
    return {"text": input["text"].upper()}


@asyncjobs.workflow("greet", input_schema=Greeting)
async def greet(*, input: Greeting, tasks: Any, inline_task: Any) -> dict[str, Any]:
    greeting = await tasks["make-greeting"]("make", input={"name": input.name})
    return await inline_task("shout", task=shout, input=greeting)  # the job's output


@asyncjobs.task("count-unconfirmed-orders")
async def count_unconfirmed_orders() -> dict[str, int]:
    return {"unconfirmed": await Order.objects.filter(confirmed_at=None).acount()}


def auto_run_enabled(jobs: asyncjobs.Jobs) -> bool:
    return os.environ.get("ASYNCJOBS_AUTO_RUN", "1").lower() not in ("0", "false", "no")


jobs = asyncjobs.Jobs(
    tasks=[make_greeting, count_unconfirmed_orders],
    # task_runner(): the "django-task" workflow that runs Django's @task functions (tasks.py)
    workflows=[greet, task_runner(retries=2)],
    database_url=DATABASE_URL,  # Django's database too (settings.py), so the admin shows jobs
    secret=os.environ.get("ASYNCJOBS_SECRET"),  # also the dashboard's HTTP Basic password
    # The dashboard (settings.ASYNCJOBS["DASHBOARD_PREFIX"]) for the site's staff members.
    access=asyncjobs.Access(dashboard=staff_user, run=staff_user, cancel=staff_user),
    auto_run=[asyncjobs.AutoRun(cron="* * * * * *")],  # every second, and at once on queue
    should_auto_run=auto_run_enabled,
    delete_job_on_complete=False,  # keep finished greetings: /jobs/<id> reads them
)
