"""Turn ``where`` dicts, statuses and sort strings into SQL expressions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, true
from sqlalchemy.sql.elements import UnaryExpression

from asyncjobs.storage.tables import jobs

WHERE_COLUMNS = ("id", "task_slug", "workflow_slug", "queue")
STATUSES = ("queued", "waiting", "processing", "completed", "failed", "cancelled")


def unfinished() -> ColumnElement[bool]:
    return and_(jobs.c.completed_at.is_(None), jobs.c.has_error == false())


def lease_free(now: datetime) -> ColumnElement[bool]:
    return or_(jobs.c.processing_until.is_(None), jobs.c.processing_until <= now)


def runnable(now: datetime) -> ColumnElement[bool]:
    """Not finished, not leased by a live worker, and due (``wait_until <= now``)."""
    due = or_(jobs.c.wait_until.is_(None), jobs.c.wait_until <= now)
    return and_(unfinished(), lease_free(now), due)


def where_clause(where: Mapping[str, Any] | None, now: datetime) -> list[ColumnElement[bool]]:
    """Equality filters on columns and ``input.<key>``, plus ``status`` for ``find``.

    Raises:
        ValueError: a key that is not filterable, or an unknown status.
    """
    return [_condition(key, value, now) for key, value in (where or {}).items()]


def _condition(key: str, value: Any, now: datetime) -> ColumnElement[bool]:
    if key in WHERE_COLUMNS:
        return jobs.c[key].is_(None) if value is None else jobs.c[key] == value
    if key == "status":
        return status_clause(value, now)
    if key.startswith("input.") and len(key) > len("input."):
        return _input_condition(key[len("input.") :], value)
    raise ValueError(
        f"cannot filter jobs on {key!r}; use {', '.join(WHERE_COLUMNS)}, status or input.<key>"
    )


def _input_condition(field: str, value: Any) -> ColumnElement[bool]:
    element = jobs.c.input[field]
    condition: ColumnElement[bool] | None = None
    if isinstance(value, bool):
        condition = element.as_boolean() == value
    elif isinstance(value, int):
        condition = element.as_integer() == value
    elif isinstance(value, float):
        condition = element.as_float() == value
    elif isinstance(value, str):
        condition = element.as_string() == value
    if condition is not None:
        return condition
    raise ValueError(f"input.{field} filters take a str, int, float or bool, got {value!r}")


def status_clause(status: str, now: datetime) -> ColumnElement[bool]:
    """The SQL form of ``Job.status`` against ``now``."""
    cancelled = jobs.c.error["cancelled"].as_boolean() == true()
    leased = jobs.c.processing_until > now
    waiting = jobs.c.wait_until > now
    clauses: dict[str, ColumnElement[bool]] = {
        "cancelled": and_(jobs.c.has_error == true(), cancelled),
        "failed": and_(jobs.c.has_error == true(), or_(jobs.c.error.is_(None), ~cancelled)),
        "completed": and_(jobs.c.has_error == false(), jobs.c.completed_at.is_not(None)),
        "processing": and_(unfinished(), leased),
        "waiting": and_(unfinished(), lease_free(now), waiting),
        "queued": and_(unfinished(), lease_free(now), or_(jobs.c.wait_until.is_(None), ~waiting)),
    }
    if status not in clauses:
        raise ValueError(f"unknown job status {status!r}; use one of {', '.join(STATUSES)}")
    return clauses[status]


def order_by(order: str) -> list[UnaryExpression[Any]]:
    """``"created_at"`` ascending, ``"-created_at"`` descending; ties broken by id alike."""
    desc = order.startswith("-")
    column = jobs.c[order.lstrip("-")]
    if desc:
        return [column.desc(), jobs.c.id.desc()]
    return [column.asc(), jobs.c.id.asc()]


def sort_key(order: str) -> tuple[str, bool]:
    """The column name and direction, for re-sorting rows a statement returned unordered."""
    return order.lstrip("-"), order.startswith("-")
