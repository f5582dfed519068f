"""Database failures as StorageError messages that name the statement kind, never its values.

SQLAlchemy's own message carries the SQL and every bound value (whole job inputs), and driver
messages quote the value they refused (``invalid input for query argument $1: 'x'``) or the
whole failing row (PostgreSQL's ``DETAIL``); a chained cause would print them into every log
of the error. So the driver's exception is kept as ``driver_error``, not chained, and the
message keeps the operation, the statement kind, the driver's error class and its reason up
to the first ``": "``, after which drivers put the offending value.
"""

from __future__ import annotations

from asyncjobs.errors import StorageError


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
