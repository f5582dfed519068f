"""Turn ``where`` dicts, statuses and sort strings into SQL expressions."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ColumnElement, String, and_, bindparam, false, or_, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import BindParameter, UnaryExpression

from asyncjobs.checks import check_id
from asyncjobs.json_values import text_problem
from asyncjobs.storage.tables import jobs

WHERE_COLUMNS = ("id", "task_slug", "workflow_slug", "queue", "priority", "idempotency_key")
STATUSES = ("queued", "waiting", "suspended", "processing", "completed", "failed", "cancelled")


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
        ValueError: a key that is not filterable, or a value it cannot be compared with.
    """
    if where is not None and not isinstance(where, Mapping):
        raise ValueError(f"where must be a dict, got {where!r:.40}")
    return [_condition(key, value, now) for key, value in (where or {}).items()]


def _condition(key: Any, value: Any, now: datetime) -> ColumnElement[bool]:
    if not isinstance(key, str):
        raise ValueError(f"where keys must be strings, got {key!r:.40}")
    if key in WHERE_COLUMNS:
        return jobs.c[key].is_(None) if value is None else jobs.c[key] == _column_value(key, value)
    if key == "status":
        return status_clause(value, now)
    if key.startswith("input.") and len(key) > len("input."):
        return InputEquals(_text(key[len("input.") :], "where key"), _input_value(key, value))
    raise ValueError(
        f"cannot filter jobs on {key!r:.60}; use {', '.join(WHERE_COLUMNS)}, status or input.<key>"
    )


def _column_value(key: str, value: Any) -> Any:
    what = f"where[{key!r}]"
    if jobs.c[key].type.python_type is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{what} must be an int, got {value!r:.40}")
        return check_id(value, what)
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a str, got {value!r:.40}")
    return _text(value, what)


def _text(value: str, what: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}, got {value!r:.60}")
    return value


def _input_value(key: str, value: Any) -> str | int | float | bool:
    what = f"where[{key!r:.60}]"
    if isinstance(value, str):
        return _text(value, what)
    if isinstance(value, int) and not isinstance(value, bool):
        return check_id(value, what)  # the same 64-bit range as SQLite's JSON integers
    if isinstance(value, bool) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(f"{what} takes a str, int, finite float or bool, got {value!r:.40}")


class InputEquals(ColumnElement[bool]):
    """``input[key]`` equals ``value`` as JSON: of the same JSON type and equal, or false.

    A row holding another type there never matches and never breaks the statement, and
    ``key`` is one literal top-level key on both backends (no path syntax).
    """

    type = Boolean()
    inherit_cache = False  # built per call from user values, like the rest of a where filter

    def __init__(self, key: str, value: str | int | float | bool) -> None:
        self.field: BindParameter[str] = bindparam(None, key, String())
        self.kind = _json_kind(value)
        self.value: BindParameter[Any] = bindparam(None, value)
        self.json: BindParameter[str] = bindparam(None, json.dumps(value), String())


def _json_kind(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "text" if isinstance(value, str) else "number"


_SQLITE_MATCH = {
    "text": "{each}.type = 'text' AND {each}.atom = {value}",
    # SQLite reads an integer beyond 64 bits as a rounded real: it never matches
    "number": "({each}.type = 'real' OR ({each}.type = 'integer'"
    " AND typeof({each}.atom) = 'integer')) AND {each}.atom = {value}",
    "true": "{each}.type = 'true'",
    "false": "{each}.type = 'false'",
}


@compiles(InputEquals, "postgresql")
def _postgres_input_equals(element: InputEquals, compiler: Any, **kw: Any) -> str:
    # jsonb equality compares type and value (numbers numerically) and never casts a row.
    column = compiler.process(jobs.c.input, **kw)
    key, value = compiler.process(element.field, **kw), compiler.process(element.json, **kw)
    return f"(({column} -> {key}) = CAST({value} AS JSONB))"


@compiles(InputEquals, "sqlite")
def _sqlite_input_equals(element: InputEquals, compiler: Any, **kw: Any) -> str:
    # json_each reads the top-level key literally; a JSON path would parse '"' and '.'.
    column = compiler.process(jobs.c.input, **kw)
    key = compiler.process(element.field, **kw)
    match = _SQLITE_MATCH[element.kind].format(
        each="input_entry", value=compiler.process(element.value, **kw)
    )
    return (
        f"EXISTS (SELECT 1 FROM json_each({column}) AS input_entry"
        f" WHERE input_entry.key = {key} AND {match})"
    )


def status_clause(status: str, now: datetime) -> ColumnElement[bool]:
    """The SQL form of ``Job.status`` against ``now``."""
    cancelled = jobs.c.error["cancelled"].as_boolean() == true()
    leased = jobs.c.processing_until > now
    waiting = jobs.c.wait_until > now
    held = jobs.c.suspended == true()
    clauses: dict[str, ColumnElement[bool]] = {
        "cancelled": and_(jobs.c.has_error == true(), cancelled),
        "failed": and_(jobs.c.has_error == true(), or_(jobs.c.error.is_(None), ~cancelled)),
        "completed": and_(jobs.c.has_error == false(), jobs.c.completed_at.is_not(None)),
        "processing": and_(unfinished(), leased),
        "waiting": and_(unfinished(), lease_free(now), waiting, or_(~held, held.is_(None))),
        "suspended": and_(unfinished(), lease_free(now), waiting, held),
        "queued": and_(unfinished(), lease_free(now), or_(jobs.c.wait_until.is_(None), ~waiting)),
    }
    if not isinstance(status, str) or status not in clauses:
        raise ValueError(f"unknown job status {status!r:.40}; use one of {', '.join(STATUSES)}")
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
