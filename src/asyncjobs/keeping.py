"""Which completions delete their job: all of them with ``delete_job_on_complete``, except the
jobs whose ``meta`` asks to be kept (``{"keep_on_complete": True}``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asyncjobs.attempt import Attempt

KEEP_KEY = "keep_on_complete"


def kept(meta: Any) -> bool:
    """Whether a job with this ``meta`` outlives its completion whatever the instance says."""
    return isinstance(meta, dict) and meta.get(KEEP_KEY) is True


def by_deletion(batch: Sequence[Attempt], delete: bool) -> list[tuple[bool, list[Attempt]]]:
    """``batch`` split into (delete, attempts) groups, one completion statement each."""
    if not delete:
        return [(False, list(batch))]
    keep = [attempt for attempt in batch if kept(attempt.row.meta)]
    if not keep:
        return [(True, list(batch))]
    gone = [attempt for attempt in batch if not kept(attempt.row.meta)]
    return [(False, keep), (True, gone)] if gone else [(False, keep)]
