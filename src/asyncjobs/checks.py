"""One-line checks of what users pass in: names, lengths, ids, durations, import strings.

Each raises ``ValueError`` or ``TypeError`` naming the problem; nothing here knows the runtime.
"""

from __future__ import annotations

import ast
import math
import re
from datetime import timedelta
from typing import Any

from asyncjobs.json_values import text_problem

HANDLER_ARGS = frozenset(
    {"input", "job", "tasks", "inline_task", "jobs", "sleep", "wait_for_signal", "run_child"}
)
HOOK_ARGS = frozenset({"input", "job", "task_status"})
KEY_ARGS = frozenset({"input", "queue"})
BEFORE_SCHEDULE_ARGS = frozenset({"jobs", "slug", "queue", "schedule", "wait_until", "default"})
AFTER_SCHEDULE_ARGS = frozenset({"status", "job", "error", "jobs", "slug", "queue", "schedule"})
ORDER_FIELDS = frozenset(
    {"created_at", "updated_at", "id", "wait_until", "queue", "total_tried", "completed_at"}
)
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

Seconds = float | timedelta


def seconds(value: Seconds) -> float:
    """A duration as float seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


MIN_PRIORITY, MAX_PRIORITY = -100, 100


def priority_problem(value: object) -> str | None:
    """Why ``value`` is not a priority (an int from -100 to 100, not a bool), or None."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and MIN_PRIORITY <= value <= MAX_PRIORITY:  # type: ignore[operator]
        return None
    return f"priority must be an int from {MIN_PRIORITY} to {MAX_PRIORITY}, got {value!r:.40}"


def check_priority(value: object, what: str) -> int:
    problem = priority_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    return value  # type: ignore[return-value]


def check_timeout(value: object, what: str) -> float | None:
    """A timeout as float seconds (None: no limit); a positive number or ``timedelta``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | timedelta):
        raise ValueError(f"{what} timeout must be seconds or a timedelta, got {value!r:.40}")
    limit = seconds(value)
    if not (math.isfinite(limit) and limit > 0):
        raise ValueError(f"{what} timeout must be more than 0 seconds, got {value!r:.40}")
    return limit


MAX_NAME_LENGTH = 200  # slugs and queue names, as stored
MAX_KEY_LENGTH = 500  # concurrency keys, as stored
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MIN_ID, MAX_ID = -(2**63), 2**63 - 1  # job ids: BIGINT on PostgreSQL, INTEGER on SQLite


def check_slug(slug: object, what: str) -> str:
    if not isinstance(slug, str) or not slug.strip():
        raise ValueError(f"{what} slug must be a non-empty string, got {slug!r}")
    return check_length(slug, MAX_NAME_LENGTH, f"{what} slug")


CHILD_TOPIC = "run_child:"  # a child's outcome reaches its parent on "run_child:<child id>"


def check_topic(topic: object) -> str:
    """A signal topic: a non-empty name, not one the engine keeps for children."""
    if not isinstance(topic, str) or not topic.strip():
        raise ValueError(f"signal topic must be a non-empty string, got {topic!r:.40}")
    if topic.startswith(CHILD_TOPIC):
        raise ValueError(f"signal topics starting with {CHILD_TOPIC!r} are kept for run_child")
    return check_length(topic, MAX_NAME_LENGTH, "signal topic")


def check_queue(queue: object) -> str:
    """A queue name as jobs store it: a non-empty string of at most 200 characters."""
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"queue must be a non-empty string, got {queue!r}")
    return check_length(queue, MAX_NAME_LENGTH, "queue")


def check_length(value: str, limit: int, what: str) -> str:
    """Refuse text one backend would store and the other refuse: longer than its column
    (SQLite ignores lengths), or holding NUL or an unpaired surrogate (PostgreSQL refuses)."""
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; the limit is {limit}")
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{what} {problem}, got {value!r}")
    return value


def check_id(value: object, what: str = "job id") -> int:
    """An id both backends can hold (a signed 64-bit int): an int or a string of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        number = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        kind = ValueError if isinstance(value, str) else TypeError
        raise kind(f"{what} must be an int, got {value!r:.40}")
    if not MIN_ID <= number <= MAX_ID:
        raise ValueError(f"{what} must fit in 64 bits, got an int of {number.bit_length()} bits")
    return number


def check_import_string(value: str, what: str) -> None:
    """An import string must look like ``package.module:attr`` and be valid Python names."""
    if not _IMPORT_STRING.match(value):
        raise ValueError(f"{what} handler {value!r} is not an import string 'package.module:attr'")
    for part in value.replace(":", ".").split("."):
        try:
            ast.parse(part, mode="eval")
        except SyntaxError as exc:
            raise ValueError(f"{what} handler {value!r} has invalid syntax") from exc


def check_order(order: str) -> str:
    if order.lstrip("-") not in ORDER_FIELDS:
        raise ValueError(f"unknown sort {order!r}; use one of {sorted(ORDER_FIELDS)}")
    return order


def check_secret(secret: object) -> str | None:
    """The bearer secret of the endpoints, refused when no request could ever carry it."""
    if secret is None or secret == "":
        return None  # no secret: only Access.run can approve a request
    if not isinstance(secret, str):
        raise TypeError(f"secret must be a str or None, got {type(secret).__name__}")
    if secret != secret.strip():
        raise ValueError(
            "secret must not start or end with whitespace: a bearer token never does, "
            "so it could never match"
        )
    if not secret.isprintable() or text_problem(secret) is not None:
        raise ValueError("secret must hold printable characters only, as an HTTP header does")
    return secret


def check_limit(limit: object) -> None:
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be a positive int, got {limit!r}")


def check_type(value: Any, kind: type, name: str) -> Any:
    if value is not None and not isinstance(value, kind):
        raise TypeError(f"{name} must be {kind.__name__} or None, got {value!r}")
    return value


def check_callable(value: Any, name: str) -> Any:
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}")
    return value
