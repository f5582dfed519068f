"""The registered tasks and workflows, looked up by slug, and import-string handlers."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from asyncjobs.definitions import Task, Workflow, import_handler
from asyncjobs.errors import NotRegistered


class Registry:
    """Tasks and workflows by slug; slugs are unique across both."""

    def __init__(self, tasks: Iterable[Task], workflows: Iterable[Workflow]) -> None:
        self.tasks: dict[str, Task] = {}
        self.workflows: dict[str, Workflow] = {}
        for item in tasks:
            self._add(item, self.tasks, "task")
        for flow in workflows:
            self._add(flow, self.workflows, "workflow")
        self._check_json_steps()
        self._imported: dict[str, Callable[..., Any]] = {}

    def _add(self, item: Any, into: dict[str, Any], kind: str) -> None:
        expected = Task if kind == "task" else Workflow
        if not isinstance(item, expected):
            raise TypeError(f"{kind}s must be {expected.__name__} objects, got {item!r}")
        if item.slug in self.tasks or item.slug in self.workflows:
            raise ValueError(
                f"slug {item.slug!r} is used twice; task and workflow slugs are unique"
            )
        into[item.slug] = item

    def _check_json_steps(self) -> None:
        for flow in self.workflows.values():
            if not isinstance(flow.handler, tuple):
                continue
            named = [step["task"] for step in flow.handler if "task" in step]
            missing = [slug for slug in named if slug not in self.tasks]
            if missing:
                raise ValueError(
                    f"workflow {flow.slug!r} has steps naming unregistered task(s) "
                    f"{', '.join(map(repr, missing))}"
                )

    def task(self, slug: str) -> Task:
        try:
            return self.tasks[slug]
        except KeyError:
            raise not_registered("task", slug) from None

    def workflow(self, slug: str) -> Workflow:
        try:
            return self.workflows[slug]
        except KeyError:
            raise not_registered("workflow", slug) from None

    @property
    def keyed(self) -> bool:
        """Whether any definition declares an exclusive concurrency key."""
        items: list[Task | Workflow] = [*self.tasks.values(), *self.workflows.values()]
        return any(i.concurrency is not None and i.concurrency.exclusive for i in items)

    def all_definitions(self) -> list[Task | Workflow]:
        return [*self.tasks.values(), *self.workflows.values()]

    def handler(self, target: Callable[..., Any] | str, what: str) -> Callable[..., Any]:
        """The callable behind ``target``, importing an import string on first use."""
        if not isinstance(target, str):
            return target
        if target not in self._imported:
            self._imported[target] = import_handler(target, what)
        return self._imported[target]


def not_registered(kind: str, slug: str) -> NotRegistered:
    """The error for a ``kind`` ("task" or "workflow") that no definition has the slug of."""
    return NotRegistered(f"{kind} {slug!r} is not registered")
