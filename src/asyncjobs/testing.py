"""A test kit: a clock moved by hand, and a runner that works every queue until it is idle.

::

    clock = asyncjobs.testing.Clock()
    jobs = asyncjobs.Jobs(tasks=[...], database_url="sqlite:///:memory:", clock=clock)
    await jobs.queue(task="send-email", input={...}, wait_until=clock() + timedelta(hours=1))
    statuses = await asyncjobs.testing.run_until_idle(jobs, advance=True)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asyncjobs.jobs import Jobs

__all__ = ["Clock", "run_until_idle"]

BATCH = 100  # jobs claimed per run() call
DEFAULT_MAX_JOBS = 10_000


class Clock:
    """A clock for ``Jobs(clock=...)`` that moves only when told to.

    Calling it returns the current moment, an aware UTC ``datetime``.

    Args:
        start: the first moment (any aware ``datetime``); ``None`` means the current time.

    Raises:
        TypeError: ``start`` is not a ``datetime``.
        ValueError: ``start`` is naive.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = datetime.now(UTC) if start is None else _utc(start)

    def __call__(self) -> datetime:
        return self._now

    def advance(self, by: float | timedelta) -> datetime:
        """Move forward by ``by`` (seconds or a ``timedelta``); returns the new moment.

        Raises:
            TypeError: ``by`` is neither a number nor a ``timedelta``.
            ValueError: ``by`` is negative (use :meth:`set` to go back).
        """
        if isinstance(by, bool) or not isinstance(by, int | float | timedelta):
            raise TypeError(f"advance() takes seconds or a timedelta, got {by!r}")
        step = by if isinstance(by, timedelta) else timedelta(seconds=by)
        if step < timedelta(0):
            raise ValueError(f"advance() moves forward only, got {by!r}; use set() to go back")
        self._now += step
        return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (any aware ``datetime``, kept in UTC); returns it.

        Raises:
            ValueError: ``moment`` is naive.
        """
        self._now = _utc(moment)
        return self._now

    def __repr__(self) -> str:
        return f"Clock({self._now.isoformat()})"


def _utc(moment: datetime) -> datetime:
    if not isinstance(moment, datetime):
        raise TypeError(f"Clock needs a datetime, got {moment!r}")
    if moment.utcoffset() is None:
        raise ValueError(f"Clock needs a timezone-aware datetime, got naive {moment}")
    return moment.astimezone(UTC)


async def run_until_idle(
    jobs: Jobs, *, advance: bool = False, max_jobs: int = DEFAULT_MAX_JOBS
) -> dict[int, str]:
    """Run the jobs of every queue until none is runnable, jobs queued meanwhile included.

    Args:
        jobs: the ``Jobs`` to run (opened on first use, like ``run()``).
        advance: when nothing is runnable, move the ``Clock`` to the earliest ``wait_until``
            of a waiting job (a later start, a retry's backoff) and go on, until no job waits.
        max_jobs: the most job runs to make before giving up.

    Returns:
        Each job's status from its last run: ``"success"``, ``"error"`` (will retry) or
        ``"error-reached-max-retries"`` or ``"suspended"`` (a durable wait), keyed by job id in
        the order they first ran.

    Raises:
        TypeError: ``advance=True`` but ``jobs.clock`` is not a :class:`Clock`.
        ValueError: ``max_jobs`` is not a positive int.
        RuntimeError: the queues are still not idle after ``max_jobs`` runs.
    """
    clock = _movable(jobs) if advance else None
    if isinstance(max_jobs, bool) or not isinstance(max_jobs, int) or max_jobs < 1:
        raise ValueError(f"max_jobs must be a positive int, got {max_jobs!r}")
    statuses: dict[int, str] = {}
    ran = 0
    while True:
        result = await jobs.run(all_queues=True, limit=min(BATCH, max_jobs - ran))
        statuses.update(result.job_status)
        ran += max(1, len(result.job_status))  # a run whose jobs were all handed back counts
        if result.no_jobs_remaining and (clock is None or not await _to_next_wait(jobs, clock)):
            return statuses
        if ran >= max_jobs:
            raise RuntimeError(
                f"run_until_idle: the queues are still not idle after {max_jobs} jobs "
                "(a job that queues another forever?); raise max_jobs if this is expected"
            )


def _movable(jobs: Jobs) -> Clock:
    if not isinstance(jobs.clock, Clock):
        raise TypeError(
            "run_until_idle(advance=True) moves the clock: build the Jobs with "
            "clock=asyncjobs.testing.Clock()"
        )
    return jobs.clock


async def _to_next_wait(jobs: Jobs, clock: Clock) -> bool:
    """Move ``clock`` to the earliest ``wait_until`` of a waiting job or of a suspended one's
    timeout; ``False`` if none."""
    times = []
    for status in ("waiting", "suspended"):
        found = await jobs.find(where={"status": status}, limit=1, order="wait_until")
        if found and found[0].wait_until is not None:
            times.append(found[0].wait_until)
    if not times:
        return False
    clock.set(max(clock(), min(times)))
    return True
