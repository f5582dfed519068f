"""Keyword injection: call user callables with only the keyword arguments they declare."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection
from typing import Any

import anyio.to_thread


class Lazy:
    """A value computed only when the callee declares its name."""

    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def declared_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    """Return the keyword names ``fn`` accepts, or ``None`` when it takes ``**kwargs``."""
    try:
        return _declared_names(fn)
    except TypeError:  # unhashable callable
        return _declared_names.__wrapped__(fn)


@functools.lru_cache(maxsize=1024)
def _declared_names(fn: Callable[..., Any]) -> frozenset[str] | None:
    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return frozenset(
        p.name
        for p in params
        if p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    )


def check_injectable(fn: Callable[..., Any], allowed: Collection[str], what: str) -> None:
    """Raise ``TypeError`` when ``fn`` declares a keyword outside ``allowed``."""
    if not callable(fn):
        raise TypeError(f"{what} must be callable, got {fn!r}")
    names = declared_names(fn)
    unknown = sorted((names or frozenset()) - set(allowed))
    if unknown:
        raise TypeError(
            f"{what} {_name(fn)} asks for unknown argument(s) {', '.join(unknown)}; "
            f"it may declare only: {', '.join(sorted(allowed))}"
        )


def _name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def pick(fn: Callable[..., Any], available: dict[str, Any]) -> dict[str, Any]:
    """The subset of ``available`` that ``fn`` declares, with :class:`Lazy` values made."""
    names = declared_names(fn)
    chosen = available if names is None else {k: v for k, v in available.items() if k in names}
    return {k: v.make() if isinstance(v, Lazy) else v for k, v in chosen.items()}


async def call(fn: Callable[..., Any], available: dict[str, Any], *, thread: bool = False) -> Any:
    """Call ``fn`` with the keywords it declares; await it if it returns an awaitable.

    Args:
        fn: a sync or async callable.
        available: every keyword the caller can offer.
        thread: run a sync ``fn`` in a worker thread instead of on the event loop. A thread
            cannot be interrupted: when the caller is cancelled, the call is abandoned at once
            and the thread's eventual result is discarded.
    """
    kwargs = pick(fn, available)
    if thread and not _is_async(fn):
        return await anyio.to_thread.run_sync(lambda: fn(**kwargs), abandon_on_cancel=True)
    result = fn(**kwargs)
    if inspect.isawaitable(result):
        return await result
    return result


def _is_async(fn: Callable[..., Any]) -> bool:
    call_attr = getattr(fn, "__call__", None)  # noqa: B004 - looking for async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call_attr)


async def call_positional(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn(*args)``, sync or async."""
    result = fn(*args)
    if inspect.isawaitable(result):
        return await result
    return result
