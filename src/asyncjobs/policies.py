"""How jobs are claimed and held: leases, claim order, concurrency keys."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asyncjobs.checks import KEY_ARGS, Seconds, check_order, seconds
from asyncjobs.injection import check_injectable

DEFAULT_ORDER = "created_at"


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


def as_processing_order(value: OrderLike) -> OrderLike:
    if isinstance(value, str):
        return check_order(value)
    if isinstance(value, ProcessingOrder) or callable(value):
        return value
    raise TypeError(f"processing_order must be a str, ProcessingOrder or callable, got {value!r}")


def order_for(
    configured: OrderLike,
    explicit: str | None,
    queue: str,
    all_queues: bool,
    run_args: Mapping[str, Any],
) -> str:
    """The claim order of one ``run()``: its own, else the queue's, else the default."""
    if explicit is not None:
        return check_order(explicit)
    if isinstance(configured, str):
        return configured
    if isinstance(configured, ProcessingOrder):
        if not all_queues and queue in configured.queues:
            return configured.queues[queue]
        return configured.default
    args = {k: v for k, v in run_args.items() if k not in ("self", "request")}
    return check_order(configured(args))
