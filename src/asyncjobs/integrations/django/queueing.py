"""``queue()`` and ``aqueue()``: a job written with Django's own connection, inside the current
``transaction.atomic()`` block, its runner woken by ``transaction.on_commit``.

::

    from asyncjobs.integrations.django import queue

    with transaction.atomic():
        order = Order.objects.create(...)
        queue(task="confirm-order", input={"order": order.pk})
    # both rows commit together; on rollback neither exists and nothing is woken
"""

from __future__ import annotations

from functools import partial
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from asyncjobs import transactional
from asyncjobs.integrations.django import bridge
from asyncjobs.integrations.django.databases import django_alias
from asyncjobs.integrations.django.loading import load_jobs
from asyncjobs.jobs import Jobs
from asyncjobs.models import Job


def queue(*, using: str = DEFAULT_DB_ALIAS, jobs: Jobs | str | None = None, **kwargs: Any) -> Job:
    """Store one job with Django's connection ``using``, in its current transaction.

    Takes ``Jobs.queue``'s keyword arguments (but ``connection``), validates them the same
    way and returns the same ``Job``. The job's runner is woken when the transaction commits
    (at once outside ``atomic()``); after a rollback no job exists and nothing is woken.

    Args:
        using: the Django database alias; asyncjobs' database must be that database.
        jobs: the ``Jobs`` (or ``"module:attr"``); ``None``: ``settings.ASYNCJOBS["JOBS"]``.

    Raises:
        ValueError: asyncjobs' database is not Django's ``using`` database, or bad input
            (``ValidationError``, ``NotRegistered`` as from ``Jobs.queue``); nothing stored.
    """
    target = _jobs(jobs, using)
    # Inside atomic() on SQLite the block may hold the write lock that opening asyncjobs'
    # database (creating its tables) would wait for: there, the tables must exist already.
    idle = not connections[using].in_atomic_block
    prepared = bridge.call(target, _prepare, target, kwargs, idle)
    return _insert(target, prepared, using)


async def aqueue(
    *, using: str = DEFAULT_DB_ALIAS, jobs: Jobs | str | None = None, **kwargs: Any
) -> Job:
    """:func:`queue` for async code: the database work runs in Django's sync thread."""
    target = _jobs(jobs, using)
    prepared = await bridge.acall(target, _prepare, target, kwargs, True)
    insert = sync_to_async(_insert)
    return await insert(target, prepared, using)


def queue_in_django(jobs: Jobs, **kwargs: Any) -> Job:
    """:func:`queue` in the Django database asyncjobs uses; if it uses none of them,
    ``jobs.queue`` on asyncjobs' own connection."""
    alias = django_alias(jobs.database_url)
    if alias is None:
        return bridge.call(jobs, partial(jobs.queue, **kwargs))
    return queue(using=alias, jobs=jobs, **kwargs)


async def aqueue_in_django(jobs: Jobs, **kwargs: Any) -> Job:
    """:func:`queue_in_django` for async code."""
    alias = django_alias(jobs.database_url)
    if alias is None:
        return await bridge.acall(jobs, partial(jobs.queue, **kwargs))
    return await aqueue(using=alias, jobs=jobs, **kwargs)


def _jobs(jobs: Jobs | str | None, using: str) -> Jobs:
    target = load_jobs(jobs, "jobs=")
    alias = django_alias(target.database_url)
    if alias != using:
        where = f"Django's {alias!r}" if alias else "not one of Django's databases"
        raise ValueError(
            f"queue(using={using!r}) writes with Django's {using!r} database, but the "
            f"database of {target!r} is {where}"
        )
    return target


async def _prepare(jobs: Jobs, kwargs: dict[str, Any], open_store: bool) -> transactional.Prepared:
    item = dict(kwargs)
    override_access = item.pop("override_access", True)
    request = item.pop("request", None)
    return await transactional.prepare(
        jobs, [item], override_access, request, open_store=open_store
    )


def _insert(jobs: Jobs, prepared: transactional.Prepared, using: str) -> Job:
    connection = connections[using]
    # Outside atomic() this is the transaction; inside, it is part of the current one.
    with transaction.atomic(using=using, savepoint=False), connection.cursor() as cursor:
        created = transactional.insert_with_cursor(cursor, connection.vendor, prepared)
        transaction.on_commit(partial(_wake, jobs, created), using=using)
    return created[0]


def _wake(jobs: Jobs, created: list[Job]) -> None:
    """Tell ``jobs`` on its own loop (its lanes are not thread-safe); no loop, no runner."""
    loop = bridge.home(jobs)
    if loop is not None:
        loop.call_soon_threadsafe(transactional.announce, jobs, created)
