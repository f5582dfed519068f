"""Typed calls: Task/Workflow generics checked by mypy, and calling a Task object directly."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

import asyncjobs
from asyncjobs.definitions import Task, Workflow

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = Path(__file__).resolve().parent / "typing"
ERROR_LINE = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): error: ", re.MULTILINE)
MakeJobs = Callable[..., asyncjobs.Jobs]


def _mypy_errors() -> tuple[dict[str, set[int]], str]:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            "pyproject.toml",
            str(EXAMPLES / "ok.py"),
            str(EXAMPLES / "bad.py"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    errors: dict[str, set[int]] = {"ok.py": set(), "bad.py": set()}
    for match in ERROR_LINE.finditer(result.stdout):
        errors[Path(match["file"]).name].add(int(match["line"]))
    return errors, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_mypy_accepts_typed_use_and_flags_each_mistake() -> None:
    errors, output = _mypy_errors()
    assert errors["ok.py"] == set(), output
    marked = {
        number
        for number, line in enumerate((EXAMPLES / "bad.py").read_text().splitlines(), start=1)
        if line.rstrip().endswith("# error")
    }
    assert len(marked) >= 10
    assert errors["bad.py"] == marked, output


# -- the keywords of the decorators and the classes stay the same ------------------------------


def _keywords(fn: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


@pytest.mark.parametrize(
    ("cls", "decorator"), [(Task, asyncjobs.task), (Workflow, asyncjobs.workflow)]
)
def test_every_signature_spells_out_the_same_keywords(cls: type, decorator: Any) -> None:
    implementation = _keywords(cls.__init__)
    assert _keywords(decorator) == implementation
    overloads = typing.get_overloads(cls.__init__)
    assert len(overloads) == 2
    for overload in overloads:
        assert _keywords(overload) == implementation


# -- calling a Task object ---------------------------------------------------------------------


class EmailIn(BaseModel):
    to: str


async def test_calling_a_task_calls_its_handler_with_what_it_declares() -> None:
    @asyncjobs.task("send-email", input_schema=EmailIn)
    async def send_email(*, input: EmailIn) -> dict[str, str]:
        return {"sent to": input.to}

    got = await send_email(input=EmailIn(to="ada@example.com"), tasks={"not": "declared"})
    assert got == {"sent to": "ada@example.com"}


async def test_a_sync_handler_is_awaited_the_same_way() -> None:
    seen: list[Any] = []

    @asyncjobs.task("count")
    def count(*, input: dict[str, int], jobs: asyncjobs.Jobs) -> dict[str, int]:
        seen.append(jobs)
        return {"n": len(input)}

    jobs = asyncjobs.Jobs(tasks=[count], auto_run=[])
    assert await count(input={"a": 1, "b": 2}, jobs=jobs) == {"n": 2}
    assert seen == [jobs]


async def test_a_handler_with_kwargs_gets_every_argument_given() -> None:
    @asyncjobs.task("anything")
    async def anything(**kwargs: Any) -> dict[str, Any]:
        return {"names": sorted(kwargs)}

    assert await anything(input={}, tasks={"x": 1}) == {"names": ["input", "tasks"]}
    assert await anything() == {"names": []}


async def test_an_import_string_handler_is_imported_when_called() -> None:
    task = asyncjobs.Task("imported", "tests.handlers:triple")
    assert await task(input={"n": 2}) == {"value": 6}


# -- queueing with the objects -----------------------------------------------------------------


async def test_queue_and_queue_many_take_task_and_workflow_objects(make_jobs: MakeJobs) -> None:
    @asyncjobs.task("send-email", input_schema=EmailIn)
    async def send_email(*, input: EmailIn) -> None:
        return None

    @asyncjobs.workflow("onboard", queue="onboarding")
    async def onboard() -> None:
        return None

    jobs = make_jobs(tasks=[send_email], workflows=[onboard])
    one = await jobs.queue(task=send_email, input=EmailIn(to="ada@example.com"))
    two = await jobs.queue(workflow=onboard)
    three, four = await jobs.queue_many(
        [
            {"task": send_email, "input": {"to": "bob@example.com"}},
            {"workflow": onboard, "queue": "elsewhere"},
        ]
    )
    assert (one.task_slug, one.input) == ("send-email", {"to": "ada@example.com"})
    assert (two.workflow_slug, two.queue) == ("onboard", "onboarding")
    assert (three.task_slug, three.input) == ("send-email", {"to": "bob@example.com"})
    assert (four.workflow_slug, four.queue) == ("onboard", "elsewhere")
    with pytest.raises(asyncjobs.ValidationError, match="to: Field required"):
        await jobs.queue(task=send_email, input={})  # type: ignore[arg-type]


async def test_an_unregistered_task_object_is_not_registered(make_jobs: MakeJobs) -> None:
    async def noop() -> None:
        return None

    jobs = make_jobs(tasks=[asyncjobs.Task("known", noop)])
    with pytest.raises(asyncjobs.NotRegistered, match="'stranger'"):
        await jobs.queue(task=asyncjobs.Task("stranger", noop))
