"""Calling the async ``Jobs`` API from Django's sync code, on the loop the ``Jobs`` lives on.

A ``Jobs`` object holds database connections that belong to one event loop. Sync code (a
sync view, the admin, ``Task.enqueue()``) reaches it like this:

- when the ``Jobs`` lives on a running loop we know of (an ASGI server that started it through
  :func:`asyncjobs.integrations.django.asgi`, or the worker running a Django task), the call
  runs on that loop while the calling thread waits;
- otherwise there is no server loop at all (WSGI, ``manage.py shell``, a sync test), and the
  call runs on one event loop this module keeps in a thread for the whole process, so that the
  ``Jobs`` is always used from the same loop (``asgiref.async_to_sync`` would make a new loop
  per call, which connection pools cannot survive).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from asyncjobs.jobs import Jobs

P = ParamSpec("P")
T = TypeVar("T")

_homes: weakref.WeakKeyDictionary[Jobs, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()
_own: asyncio.AbstractEventLoop | None = None
_own_lock = threading.Lock()


def remember(jobs: Jobs) -> None:
    """Record the running loop as the one ``jobs`` lives on (call it from that loop)."""
    _homes[jobs] = asyncio.get_running_loop()


def call(jobs: Jobs, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``await fn(*args, **kwargs)`` on the loop ``jobs`` lives on and return its result.

    Raises:
        RuntimeError: called from a thread that is running an event loop (await instead).
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("this is the sync API: from async code, use the async one")
    loop = _loop_for(jobs)
    return asyncio.run_coroutine_threadsafe(_awaited(fn(*args, **kwargs)), loop).result()


async def acall(jobs: Jobs, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """``await fn(*args, **kwargs)`` on the loop ``jobs`` lives on, which may be another one
    (Django runs async views on a loop of their own under WSGI and in its test client)."""
    loop = _loop_for(jobs)
    if loop is asyncio.get_running_loop():
        return await fn(*args, **kwargs)
    future = asyncio.run_coroutine_threadsafe(_awaited(fn(*args, **kwargs)), loop)
    return await asyncio.wrap_future(future)


def home(jobs: Jobs) -> asyncio.AbstractEventLoop | None:
    """The running loop ``jobs`` lives on, if any is known."""
    loop = _homes.get(jobs)
    if loop is None or loop.is_closed() or not loop.is_running():
        return None
    return loop


def _loop_for(jobs: Jobs) -> asyncio.AbstractEventLoop:
    loop = home(jobs)
    if loop is None:
        loop = _homes[jobs] = _own_loop()
    return loop


def on_own_loop(jobs: Jobs) -> bool:
    """Whether sync calls run ``jobs`` on this module's loop: nothing else hosts it here."""
    return _own is not None and _homes.get(jobs) is _own


def release(jobs: Jobs) -> None:
    """Stop ``jobs`` on this module's loop, if it lives there, so another loop may open it."""
    if on_own_loop(jobs):
        call(jobs, jobs.stop)
        del _homes[jobs]


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable


def _own_loop() -> asyncio.AbstractEventLoop:
    global _own
    with _own_lock:
        if _own is None:
            loop = asyncio.new_event_loop()
            ready = threading.Event()
            loop.call_soon(ready.set)
            thread = threading.Thread(
                target=loop.run_forever, name="asyncjobs-django-loop", daemon=True
            )
            thread.start()
            ready.wait()
            _own = loop
    return _own
