"""Definitions users write: tasks, workflows, retries, schedules, leases, access, ordering."""

from __future__ import annotations

import ast
import dataclasses
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta, tzinfo
from typing import TYPE_CHECKING, Any, Generic, Literal, overload

from pydantic import BaseModel
from typing_extensions import TypeVar

from asyncjobs import injection
from asyncjobs.injection import call, check_injectable
from asyncjobs.json_values import text_problem

if TYPE_CHECKING:
    from asyncjobs.jobs import Jobs
    from asyncjobs.models import Job

HANDLER_ARGS = frozenset({"input", "job", "tasks", "inline_task", "jobs"})
HOOK_ARGS = frozenset({"input", "job", "task_status"})
KEY_ARGS = frozenset({"input", "queue"})
BEFORE_SCHEDULE_ARGS = frozenset({"jobs", "slug", "queue", "schedule", "wait_until", "default"})
AFTER_SCHEDULE_ARGS = frozenset({"status", "job", "error", "jobs", "slug", "queue", "schedule"})

DEFAULT_QUEUE = "default"
DEFAULT_LIMIT = 10
DEFAULT_CRON = "* * * * *"
DEFAULT_TIMEZONE = "UTC"
DEFAULT_ORDER = "created_at"
DEFAULT_STOP_TIMEOUT = 10.0  # seconds running jobs get to finish on stop()
ORDER_FIELDS = frozenset(
    {"created_at", "updated_at", "id", "wait_until", "queue", "total_tried", "completed_at"}
)
_IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

Seconds = float | timedelta
Handler = Callable[..., Any] | str
KeyFunction = Callable[..., str | None]
Hook = Callable[..., Any]

# What a Task or Workflow takes as input (its input_schema, else anything) and returns. Only
# outputs a job can store are allowed, which also keeps async handlers (returning awaitables)
# from matching the overloads meant for sync ones.
Output = Mapping[str, object] | BaseModel | None
In = TypeVar("In", default=Any)
Out = TypeVar("Out", bound=Output, default=Any)


def seconds(value: Seconds) -> float:
    """A duration as float seconds."""
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


MAX_NAME_LENGTH = 200  # slugs and queue names, as stored
MAX_KEY_LENGTH = 500  # concurrency keys, as stored
MIN_ID, MAX_ID = -(2**63), 2**63 - 1  # job ids: BIGINT on PostgreSQL, INTEGER on SQLite


def check_slug(slug: object, what: str) -> str:
    if not isinstance(slug, str) or not slug.strip():
        raise ValueError(f"{what} slug must be a non-empty string, got {slug!r}")
    return check_length(slug, MAX_NAME_LENGTH, f"{what} slug")


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


@dataclass(frozen=True, kw_only=True)
class Backoff:
    """How long to wait before the next try.

    ``fixed`` waits ``delay`` seconds; ``exponential`` waits ``delay * 2 ** prior_attempts``.
    """

    type: Literal["fixed", "exponential"] = "fixed"
    delay: Seconds = 0.0

    def __post_init__(self) -> None:
        if self.type not in ("fixed", "exponential"):
            raise ValueError(f"Backoff type must be 'fixed' or 'exponential', got {self.type!r}")
        if not 0 <= seconds(self.delay) < math.inf:  # also refuses NaN
            raise ValueError(
                f"Backoff delay must be a finite, non-negative duration, got {self.delay!r}"
            )


@dataclass(frozen=True, kw_only=True)
class Retries:
    """Retry policy: ``attempts`` retries allow ``attempts + 1`` runs.

    ``attempts=None`` on a task inherits the workflow's attempt count.
    ``should_restore`` is a bool or a callable ``(*, input, job, task_status)``.
    """

    attempts: int | None = None
    backoff: Backoff | None = None
    should_restore: bool | Callable[..., bool | Awaitable[bool]] = True

    def __post_init__(self) -> None:
        if self.attempts is not None and (
            not isinstance(self.attempts, int)
            or isinstance(self.attempts, bool)
            or self.attempts < 0
        ):
            raise ValueError(f"Retries attempts must be a non-negative int, got {self.attempts!r}")
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise TypeError(f"Retries backoff must be a Backoff, got {self.backoff!r}")
        if not isinstance(self.should_restore, bool):
            check_injectable(self.should_restore, HOOK_ARGS, "should_restore")


RetriesLike = int | Retries | None


def as_retries(value: RetriesLike, what: str = "retries") -> Retries | None:
    """Normalise ``retries=N`` to ``Retries(attempts=N)``."""
    if value is None or isinstance(value, Retries):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Retries(attempts=value)
    raise TypeError(f"{what} must be an int or Retries, got {value!r}")


def merge_retries(base: Retries | None, override: RetriesLike) -> Retries | None:
    """Call-site retries win field by field over the task's own (reference §2.4).

    A number at the call site changes only ``attempts``: the task's backoff and
    ``should_restore`` stay.
    """
    numeric = override is not None and not isinstance(override, Retries)
    call = as_retries(override)
    if base is None or call is None:
        return call or base
    if numeric:
        return dataclasses.replace(base, attempts=call.attempts)
    return Retries(
        attempts=call.attempts if call.attempts is not None else base.attempts,
        backoff=call.backoff or base.backoff,
        should_restore=call.should_restore,
    )


@dataclass(frozen=True, kw_only=True)
class Lease:
    """How long a claim lasts without renewal, and how much of it must remain before a write."""

    duration: Seconds = 60.0
    safety_buffer: Seconds = 5.0

    def __post_init__(self) -> None:
        if not 0 <= seconds(self.safety_buffer) < seconds(self.duration):
            raise ValueError(
                "Lease safety_buffer must be non-negative and less than duration "
                f"(got duration={self.duration!r}, safety_buffer={self.safety_buffer!r})"
            )


AccessCheck = Callable[..., bool | Awaitable[bool]]


@dataclass(frozen=True, kw_only=True)
class Access:
    """Callables ``(request) -> bool`` asked for calls made with ``override_access=False``.

    Only ``True`` (or an awaitable resolving to ``True``) approves: ``"false"``, ``1`` or
    ``{"allowed": False}`` refuse, like ``False`` and ``None``.
    """

    run: AccessCheck | None = None
    queue: AccessCheck | None = None
    cancel: AccessCheck | None = None

    def __post_init__(self) -> None:
        for name in ("run", "queue", "cancel"):
            fn = getattr(self, name)
            if fn is not None:
                check_injectable(fn, {"request"}, f"Access.{name}")

    async def approves(self, kind: str, request: Any) -> bool:
        """Whether the ``kind`` callable (``"run"``, ``"queue"``...) answers ``True``."""
        check = getattr(self, kind, None)
        return check is not None and await call(check, {"request": request}) is True


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


@dataclass(frozen=True, kw_only=True)
class ProcessingOrder:
    """Claim order: ``default`` for every queue unless ``queues`` names one."""

    default: str = DEFAULT_ORDER
    queues: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_order(self.default)
        for order in self.queues.values():
            check_order(order)


OrderLike = str | ProcessingOrder | Callable[[dict[str, Any]], str]


@dataclass(frozen=True)
class Concurrency:
    """Jobs with the same key never overlap (``exclusive``); ``supersedes`` drops pending ones."""

    key: Callable[..., str | None]
    exclusive: bool = True
    supersedes: bool = False

    def __post_init__(self) -> None:
        check_injectable(self.key, KEY_ARGS, "Concurrency.key")


def as_concurrency(value: Concurrency | Callable[..., str | None] | None) -> Concurrency | None:
    if value is None or isinstance(value, Concurrency):
        return value
    return Concurrency(value)


@dataclass(frozen=True)
class Schedule:
    """Enqueue the task or workflow on ``queue`` at every tick of ``cron``.

    ``cron`` is read in ``timezone``'s wall-clock time (an IANA name such as
    ``"Europe/Berlin"``): a time skipped when clocks spring forward does not fire that day,
    and one repeated when they fall back fires once, at its first occurrence.
    """

    cron: str
    queue: str = DEFAULT_QUEUE
    before_schedule: Callable[..., Any] | None = None
    after_schedule: Callable[..., Any] | None = None
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        from asyncjobs.cron import parse, zone

        parse(self.cron)
        zone(self.timezone)
        check_queue(self.queue)
        if self.before_schedule is not None:
            check_injectable(self.before_schedule, BEFORE_SCHEDULE_ARGS, "before_schedule")
        if self.after_schedule is not None:
            check_injectable(self.after_schedule, AFTER_SCHEDULE_ARGS, "after_schedule")

    @property
    def zone(self) -> tzinfo:
        """The ``tzinfo`` of ``timezone``."""
        from asyncjobs.cron import zone

        return zone(self.timezone)


@dataclass(frozen=True, kw_only=True)
class AutoRun:
    """A cron entry that, inside the host event loop, handles schedules and runs due jobs.

    ``cron`` is read in ``timezone``'s wall-clock time, as for :class:`Schedule`.
    """

    cron: str = DEFAULT_CRON
    queue: str = DEFAULT_QUEUE
    limit: int = DEFAULT_LIMIT
    all_queues: bool = False
    disable_scheduling: bool = False
    silent: bool | Mapping[str, bool] = False
    wake_on_queue: bool = True
    timezone: str = DEFAULT_TIMEZONE

    def __post_init__(self) -> None:
        from asyncjobs.cron import parse, zone

        parse(self.cron)
        check_queue(self.queue)
        zone(self.timezone)
        if not isinstance(self.limit, int) or isinstance(self.limit, bool) or self.limit < 1:
            raise ValueError(f"AutoRun limit must be a positive int, got {self.limit!r}")

    @property
    def zone(self) -> tzinfo:
        """The ``tzinfo`` of ``timezone``."""
        from asyncjobs.cron import zone

        return zone(self.timezone)


AutoRunLike = Sequence[AutoRun] | Callable[["Jobs"], Any] | None


def _check_handler(handler: object, allowed: frozenset[str], what: str) -> None:
    if isinstance(handler, str):
        check_import_string(handler, what)
    else:
        check_injectable(handler, allowed, f"{what} handler")  # type: ignore[arg-type]


def _check_schema(schema: object, what: str) -> None:
    if schema is not None and not (isinstance(schema, type) and issubclass(schema, BaseModel)):
        raise TypeError(f"{what} must be a pydantic BaseModel subclass, got {schema!r}")


def _schedules(value: Schedule | Sequence[Schedule]) -> tuple[Schedule, ...]:
    items = (value,) if isinstance(value, Schedule) else tuple(value)
    for item in items:
        if not isinstance(item, Schedule):
            raise TypeError(f"schedule entries must be Schedule objects, got {item!r}")
    return items


@dataclass(frozen=True, init=False)
class Task(Generic[In, Out]):
    """One function, retried on failure; queued on its own or called as a workflow step.

    ``Task[In, Out]`` is generic in its input (the ``input_schema`` model, else ``Any``) and
    its output (what the handler returns), so a type checker checks ``await task(input=...)``
    and ``jobs.queue(task=task, input=...)``.
    """

    slug: str
    handler: Handler
    input_schema: type[BaseModel] | None
    output_schema: type[BaseModel] | None
    retries: Retries | None
    label: str | None
    schedule: tuple[Schedule, ...]
    on_success: Hook | None
    on_fail: Hook | None
    concurrency: Concurrency | None

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Awaitable[Out]],
        *,
        input_schema: type[In] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Out] | str,
        *,
        input_schema: type[In] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None: ...

    def __init__(
        self,
        slug: str,
        handler: Handler,
        *,
        input_schema: type[Any] | None = None,
        output_schema: type[BaseModel] | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        on_success: Hook | None = None,
        on_fail: Hook | None = None,
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None:
        what = f"task {slug!r}"
        _check_handler(handler, HANDLER_ARGS, what)
        _check_schema(input_schema, f"{what} input_schema")
        _check_schema(output_schema, f"{what} output_schema")
        for hook_name, hook in (("on_success", on_success), ("on_fail", on_fail)):
            if hook is not None:
                check_injectable(hook, HOOK_ARGS, f"{what} {hook_name}")
        values = {
            "slug": check_slug(slug, "task"),
            "handler": handler,
            "input_schema": input_schema,
            "output_schema": output_schema,
            "retries": as_retries(retries, f"{what} retries"),
            "label": label,
            "schedule": _schedules(schedule),
            "on_success": on_success,
            "on_fail": on_fail,
            "concurrency": as_concurrency(concurrency),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)

    async def __call__(
        self,
        *,
        input: In | None = None,
        job: Job | None = None,
        tasks: Any = None,
        inline_task: Any = None,
        jobs: Jobs | None = None,
    ) -> Out:
        """Call the handler directly, as a unit test does: nothing is queued or stored.

        The handler receives, of the arguments given here, the ones it declares. ``input`` is
        passed as given (not validated); a sync handler runs on the calling thread. Always
        awaited, whether the handler is async or not.
        """
        given = {"input": input, "job": job, "tasks": tasks, "inline_task": inline_task}
        available = {k: v for k, v in {**given, "jobs": jobs}.items() if v is not None}
        handler = self.handler
        if isinstance(handler, str):
            from asyncjobs.registry import import_handler

            handler = import_handler(handler, f"task {self.slug!r}")
        output: Out = await injection.call(handler, available)
        return output


@dataclass(frozen=True, init=False)
class Workflow(Generic[In, Out]):
    """A handler that calls tasks as memoized steps; a retry skips the steps that succeeded.

    ``Workflow[In, Out]`` is generic like :class:`Task`: its input is the ``input_schema``
    model (else ``Any``), its output what an async handler returns (else ``Any``).
    """

    slug: str
    handler: Handler | tuple[Mapping[str, Any], ...]
    input_schema: type[BaseModel] | None
    queue: str | None
    retries: Retries | None
    label: str | None
    schedule: tuple[Schedule, ...]
    concurrency: Concurrency | None

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Awaitable[Out]],
        *,
        input_schema: type[In] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        slug: str,
        handler: Callable[..., Out] | str | Sequence[Mapping[str, Any]],
        *,
        input_schema: type[In] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None: ...

    def __init__(
        self,
        slug: str,
        handler: Handler | Sequence[Mapping[str, Any]],
        *,
        input_schema: type[Any] | None = None,
        queue: str | None = None,
        retries: RetriesLike = None,
        label: str | None = None,
        schedule: Schedule | Sequence[Schedule] = (),
        concurrency: Concurrency | KeyFunction | None = None,
    ) -> None:
        what = f"workflow {slug!r}"
        if isinstance(handler, list | tuple):
            from asyncjobs.json_workflow import check_steps

            handler = check_steps(handler, what)
        else:
            _check_handler(handler, HANDLER_ARGS, what)
        _check_schema(input_schema, f"{what} input_schema")
        values = {
            "slug": check_slug(slug, "workflow"),
            "handler": handler,
            "input_schema": input_schema,
            "queue": None if queue is None else check_queue(queue),
            "retries": as_retries(retries, f"{what} retries"),
            "label": label,
            "schedule": _schedules(schedule),
            "concurrency": as_concurrency(concurrency),
        }
        for name, value in values.items():
            object.__setattr__(self, name, value)
