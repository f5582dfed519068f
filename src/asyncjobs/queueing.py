"""Turning ``queue()`` arguments into validated rows, before anything is stored."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from asyncjobs import injection, telemetry
from asyncjobs.checks import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    MAX_KEY_LENGTH,
    check_length,
    check_queue,
    priority_problem,
)
from asyncjobs.definitions import DEFAULT_QUEUE, Access, Task, Workflow, check_access
from asyncjobs.errors import Forbidden, JobCancelled, ValidationError
from asyncjobs.json_values import check_shape, checked
from asyncjobs.models import Job, made_job
from asyncjobs.policies import Concurrency
from asyncjobs.registry import Registry
from asyncjobs.storage import Store, cancelled_error

QUEUE_KEYS = frozenset(
    {"task", "workflow", "input", "queue", "wait_until", "meta", "priority", "idempotency_key"}
)
ITEM_KEYS = QUEUE_KEYS | {"override_access", "request"}  # what a queue_many() item may hold


async def queue_items(
    store: Store,
    registry: Registry,
    items: Sequence[Mapping[str, Any]],
    now: datetime,
) -> list[Job]:
    """Validate every item, then insert all of them in one transaction (all or nothing)."""
    rows, supersede = await prepare_rows(registry, items, now)
    stored = await telemetry.created(rows, store.insert_jobs(rows, supersede=supersede, now=now))
    return [made_job(row, now) for row in stored]


async def check_items_access(
    items: Sequence[Mapping[str, Any]], access: Access | None, request: Any
) -> None:
    """Each item queued with its own ``override_access=False`` (and ``request``) is asked."""
    for index, item in enumerate(items):
        if not item.get("override_access", True):
            try:
                await check_access(access, "queue", False, item.get("request", request))
            except Forbidden as exc:
                raise Forbidden(f"item {index}: {exc}") from None


def check_items(items: Any) -> list[Mapping[str, Any]]:
    """``queue_many()``'s items as a list, each a mapping of ``queue()`` arguments.

    Raises:
        TypeError: ``items`` is not a list of dicts, naming the first bad item.
    """
    if isinstance(items, str | bytes | Mapping) or not isinstance(items, Iterable):
        raise TypeError(f"queue_many() takes a list of dicts, got {type(items).__name__}")
    checked_items = list(items)
    for index, item in enumerate(checked_items):
        if not isinstance(item, Mapping):
            raise TypeError(f"queue_many() item {index} must be a dict, got {item!r}")
    return checked_items


async def prepare_rows(
    registry: Registry, items: Sequence[Mapping[str, Any]], now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """Validate every item; return the rows to insert and the keys whose pending jobs to drop.

    Raises:
        ValueError, NotRegistered, ValidationError: naming the item and the problem.
    """
    rows: list[dict[str, Any]] = []
    supersede: dict[str, None] = {}  # an ordered set
    for index, item in enumerate(items):
        try:
            definition, value, queue = _resolve(registry, item)
            key, cancelled = None, None
            concurrency = definition.concurrency
            if concurrency is not None:  # only then is there a user call to await
                key, cancelled = await _key_or_cancel(definition, concurrency, value, queue)
            rows.append(_row(definition, item, value, queue, key, now))
            if cancelled is not None:
                rows[-1].update(has_error=True, error=cancelled, wait_until=None)
        except (ValueError, TypeError) as exc:
            if len(items) == 1:
                raise
            raise type(exc)(f"item {index}: {exc}") from exc
        if key is not None and concurrency is not None and concurrency.supersedes:
            supersede[key] = None
    return rows, list(supersede)


def _resolve(registry: Registry, item: Mapping[str, Any]) -> tuple[Task | Workflow, Any, str]:
    if not ITEM_KEYS.issuperset(item):
        unknown = sorted(set(item) - ITEM_KEYS)
        raise ValueError(f"unknown queue() argument(s): {', '.join(unknown)}")
    definition = _definition(registry, item.get("task"), item.get("workflow"))
    value = validate_input(definition, item.get("input"))
    return definition, value, _queue(item.get("queue"), definition)


def _row(
    definition: Task | Workflow,
    item: Mapping[str, Any],
    value: Any,
    queue: str,
    key: str | None,
    now: datetime,
) -> dict[str, Any]:
    is_task = isinstance(definition, Task)
    return {
        "queue": queue,
        "task_slug": definition.slug if is_task else None,
        "workflow_slug": None if is_task else definition.slug,
        "input": checked(_dumped(value) if isinstance(value, BaseModel) else value, "input"),
        "meta": checked(dict(meta), "meta") if (meta := item.get("meta")) else {},
        "wait_until": _aware(item.get("wait_until")),
        "concurrency_key": key,
        "exclusive": bool(key and definition.concurrency and definition.concurrency.exclusive),
        "total_tried": 0,
        "has_error": False,
        "error": None,
        "created_at": now,
        "updated_at": now,
        "priority": _priority(item.get("priority"), definition),
        "idempotency_key": _idempotency_key(item.get("idempotency_key")),
    }


def _priority(value: Any, definition: Task | Workflow) -> int:
    if value is None:
        return definition.priority
    problem = priority_problem(value)
    if problem is not None:
        error = {"type": "value_error", "loc": ("priority",), "msg": problem, "input": value}
        raise ValidationError(problem, errors=[error])
    return int(value)


def _definition(registry: Registry, task: Any, workflow: Any) -> Task | Workflow:
    if (task is None) == (workflow is None):
        raise ValueError("queue() needs exactly one of task= or workflow=")
    if task is not None:
        return registry.task(task.slug if isinstance(task, Task) else task)
    return registry.workflow(workflow.slug if isinstance(workflow, Workflow) else workflow)


def validate_input(definition: Task | Workflow, raw: Any) -> Any:
    """The ``input_schema`` instance (or the plain dict) for ``raw``.

    Raises:
        ValidationError: naming each failing field.
    """
    kind = "task" if isinstance(definition, Task) else "workflow"
    if isinstance(raw, BaseModel):
        raw = _dumped(raw)
    if raw is None:
        raw = {}
    if definition.input_schema is None:  # ``checked`` walks the dict when the row is made
        if not isinstance(raw, Mapping):
            check_shape(raw, "input")
            raise ValidationError(
                f"input of {kind} {definition.slug!r} must be a dict, got {type(raw).__name__}"
            )
        return dict(raw)
    check_shape(raw, "input")  # before a schema walks a value too deep or too big to store
    try:
        return definition.input_schema.model_validate(raw)
    except PydanticValidationError as exc:
        errors = exc.errors(include_url=False)
        detail = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in errors
        )
        raise ValidationError(
            f"invalid input for {kind} {definition.slug!r}: {detail}",
            errors=[dict(e) for e in errors],
        ) from None


def _dumped(model: BaseModel) -> Any:
    try:
        return model.model_dump(mode="json")
    except (ValueError, RecursionError) as exc:  # pydantic's "Maximum serialization depth"
        raise ValidationError(f"input cannot be stored as JSON: {exc}") from None


def _queue(value: Any, definition: Task | Workflow) -> str:
    if value is None:
        value = (definition.queue if isinstance(definition, Workflow) else None) or DEFAULT_QUEUE
    return check_queue(value)


async def _key_or_cancel(
    definition: Task | Workflow, concurrency: Concurrency, value: Any, queue: str
) -> tuple[str | None, dict[str, Any] | None]:
    """The job's concurrency key; or, when the key callable raised ``JobCancelled``, the
    error of a job stored already cancelled (``JobCancelled`` anywhere cancels the job)."""
    try:
        return await _concurrency_key(definition, concurrency, value, queue), None
    except JobCancelled as exc:
        return None, cancelled_error(str(exc) or "cancelled by its concurrency key")


async def _concurrency_key(
    definition: Task | Workflow, concurrency: Concurrency, value: Any, queue: str
) -> str | None:
    key = await injection.call(concurrency.key, {"input": value, "queue": queue})
    if key is not None and not isinstance(key, str):
        raise TypeError(
            f"Concurrency.key of {definition.slug!r} must return a str or None, got {key!r}"
        )
    if key:
        check_length(key, MAX_KEY_LENGTH, f"the concurrency key of {definition.slug!r}")
    return key or None


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"wait_until must be a datetime, got {value!r}")
    if value.tzinfo is None:
        raise ValueError(f"wait_until must be timezone-aware, got naive {value!r}")
    return value


def _idempotency_key(value: Any) -> str | None:
    """``None``, or a non-empty str of at most 255 characters that both backends store."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(f"idempotency_key must be a non-empty str, got {value!r:.60}")
    try:
        return check_length(value, MAX_IDEMPOTENCY_KEY_LENGTH, "idempotency_key")
    except ValueError as exc:
        raise ValidationError(str(exc)) from None
