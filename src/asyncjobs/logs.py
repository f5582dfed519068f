"""Runner logging with structured fields, honouring ``silent``.

Every area logs under its own name below ``asyncjobs``: ``asyncjobs.runner`` (here),
``asyncjobs.autorun``, ``asyncjobs.schedules``, ``asyncjobs.storage``, ``asyncjobs.http`` and
``asyncjobs.cli``. The ``asyncjobs`` logger has a ``NullHandler``, so an application that
configures no logging gets no lines on stderr from Python's last-resort handler.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

Silent = bool | Mapping[str, bool]

logging.getLogger("asyncjobs").addHandler(logging.NullHandler())
logger = logging.getLogger("asyncjobs.runner")
_silenced: ContextVar[tuple[bool, bool]] = ContextVar("asyncjobs_silenced", default=(False, False))


def check_silent(silent: Silent) -> tuple[bool, bool]:
    """``True`` silences info and errors; ``{"info": True}`` or ``{"error": True}`` one of them."""
    if isinstance(silent, bool):
        return silent, silent
    if isinstance(silent, Mapping) and set(silent) <= {"info", "error"}:
        return bool(silent.get("info", False)), bool(silent.get("error", False))
    raise ValueError(f"silent must be a bool or a dict with 'info'/'error' keys, got {silent!r}")


def job_fields(row: Any) -> dict[str, Any]:
    """The ``extra`` of every line about a job (a ``JobRow``): its id, slug, queue and attempt
    (1 for the first; a job's row counts an attempt once its outcome is written)."""
    tried = row.total_tried if row.processing_token is None else row.total_tried + 1
    return {"job_id": row.id, "slug": row.slug, "queue": row.queue, "attempt": tried}


@contextmanager
def silenced(silent: Silent) -> Iterator[None]:
    token = _silenced.set(check_silent(silent))
    try:
        yield
    finally:
        _silenced.reset(token)


def info(
    msg: str, *args: Any, extra: Mapping[str, Any] | None = None, log: logging.Logger = logger
) -> None:
    if not _silenced.get()[0]:
        log.info(msg, *args, extra=dict(extra or {}))


def error(
    msg: str,
    *args: Any,
    extra: Mapping[str, Any] | None = None,
    exc: bool = False,
    log: logging.Logger = logger,
) -> None:
    if not _silenced.get()[1]:
        log.error(msg, *args, extra=dict(extra or {}), exc_info=exc)
