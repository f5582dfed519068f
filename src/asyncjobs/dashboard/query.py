"""The job list's filter (status, queue, slug, id) and cursor, read from a query or a form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from asyncjobs.checks import MAX_NAME_LENGTH
from asyncjobs.dashboard.present import STATUSES
from asyncjobs.registry import Registry

FILTER_KEYS = ("status", "queue", "slug", "id")
MAX_ID = 2**63 - 1


class BadFilter(ValueError):
    """A filter or cursor value that cannot be used; the message names it."""


@dataclass(frozen=True)
class JobFilter:
    """Which jobs the list shows and the bulk actions touch; empty fields match everything."""

    status: str | None = None
    queue: str | None = None
    slug: str | None = None
    id: int | None = None

    @classmethod
    def parse(cls, given: Mapping[str, str]) -> JobFilter:
        """Read the filter from query or form fields; blank fields are no filter.

        Raises:
            BadFilter: an unknown status, a name too long, or an id that is not a number.
        """
        values = {key: (given.get(key) or "").strip() or None for key in FILTER_KEYS}
        status = values["status"]
        if status is not None and status not in STATUSES:
            raise BadFilter(f"unknown status {status!r}; use one of {', '.join(STATUSES)}")
        for key in ("queue", "slug"):
            if len(values[key] or "") > MAX_NAME_LENGTH:
                raise BadFilter(f"{key} is longer than {MAX_NAME_LENGTH} characters")
        return cls(status, values["queue"], values["slug"], number(values["id"], "id"))

    @property
    def active(self) -> bool:
        return any(value is not None for value in asdict(self).values())

    def fields(self) -> dict[str, str]:
        return {k: str(v) for k, v in asdict(self).items() if v is not None}

    def query(self, **extra: Any) -> str:
        """``?status=failed&...`` for links; ``extra`` adds or replaces parameters."""
        params = {**self.fields(), **{k: str(v) for k, v in extra.items() if v is not None}}
        return "?" + urlencode(params) if params else ""

    def where(self, registry: Registry) -> dict[str, Any]:
        """The storage filter: a registered slug names its column, any other both."""
        where: dict[str, Any] = {k: v for k, v in asdict(self).items() if v is not None}
        slug = where.pop("slug", None)
        if slug in registry.tasks:
            where["task_slug"] = slug
        elif slug in registry.workflows:
            where["workflow_slug"] = slug
        elif slug is not None:
            where["slug"] = slug
        return where

    def wheres(self, registry: Registry) -> list[dict[str, Any]]:
        """``where`` as ``Jobs.cancel`` takes it: one dict per column an unknown slug may be in."""
        where = self.where(registry)
        slug = where.pop("slug", None)
        if slug is None:
            return [where]
        return [{**where, "task_slug": slug}, {**where, "workflow_slug": slug}]

    def describe(self) -> str:
        """``status failed, queue emails`` for confirmations."""
        return ", ".join(f"{k} {v}" for k, v in self.fields().items()) or "no filter"


def number(text: str | None, name: str) -> int | None:
    """A positive job id or cursor from text; ``None`` for none.

    Raises:
        BadFilter: not a whole number in range.
    """
    if text is None or text == "":
        return None
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_ID:
        raise BadFilter(f"{name} must be a job id (a positive whole number), got {text!r}")
    return int(text)
