"""Database failures as StorageError messages that name the statement kind, never its values.

SQLAlchemy's own message carries the SQL and every bound value (whole job inputs), and driver
messages quote the value they refused (``invalid input for query argument $1: 'x'``) or the
whole failing row (PostgreSQL's ``DETAIL``); a chained cause would print them into every log
of the error. So the driver's exception is kept as ``driver_error``, not chained, and the
message keeps the operation, the statement kind, the driver's error class and its reason up
to the first ``": "``, after which drivers put the offending value.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, DisconnectionError, SQLAlchemyError

from asyncjobs.errors import ConnectionLost, StorageError

P = ParamSpec("P")
T = TypeVar("T")


def translated(fn: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, Coroutine[Any, Any, T]]:
    """Map driver and SQLAlchemy errors to :class:`StorageError` at the boundary
    (:class:`ConnectionLost` when the connection broke)."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return await fn(*args, **kwargs)
        except (SQLAlchemyError, OSError) as exc:
            kind = ConnectionLost if _lost(exc) else StorageError
            raise storage_error(fn.__name__, exc, kind) from None

    return wrapper


def _lost(exc: BaseException) -> bool:
    """Whether the connection broke (or could not be made), rather than a statement refused."""
    if isinstance(exc, OSError | DisconnectionError):
        return True
    # No statement: it failed connecting (or beginning, or committing).
    return isinstance(exc, DBAPIError) and (
        exc.connection_invalidated or exc.statement is None or isinstance(exc.orig, OSError)
    )


def storage_error(
    operation: str, exc: BaseException, kind: type[StorageError] = StorageError
) -> StorageError:
    """The :class:`StorageError` (or ``kind``) to raise ``from None`` when ``operation`` failed."""
    statement = getattr(exc, "statement", None)
    what = f" ({statement.split(None, 1)[0].upper()})" if statement else ""
    error = kind(f"{operation} failed{what}: {_reason(exc)}")
    error.driver_error = exc
    return error


def _reason(exc: BaseException) -> str:
    driver = getattr(exc, "orig", None) or exc  # SQLAlchemy keeps the driver's error there
    driver = driver.__cause__ or driver  # SQLAlchemy's asyncpg adapter wraps asyncpg's
    text = (str(driver).strip().splitlines() or [""])[0]
    if not isinstance(driver, OSError):  # an OS error names a path or an address, no value
        text = text.split(": ", 1)[0]
    return f"{type(driver).__name__}: {text}" if text else type(driver).__name__
