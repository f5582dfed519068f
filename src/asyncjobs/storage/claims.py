"""The SQLAlchemy statements that lease the jobs one :class:`Claim` asks for."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import bindparam, false, func, or_, select, true, update

from asyncjobs.storage import filters
from asyncjobs.storage.base import Claim
from asyncjobs.storage.tables import UTCDateTime, jobs


def claim_statement(claim: Claim) -> tuple[Any, dict[str, Any]]:
    """The claim's UPDATE and its parameters; prebuilt unless ``where`` filters are given.

    Building the statement and its cache key took longer than the database needed to run
    it, so the common shapes are built once with bind parameters.
    """
    if claim.where:
        return _claim_update(claim), {}
    template = _claim_template(
        claim.order, claim.keyed, claim.queue is not None, claim.job_id is not None
    )
    params: dict[str, Any] = {
        "p_now": claim.now,
        "p_until": claim.until,
        "p_token": claim.token,
        "p_limit": claim.limit,
    }
    if claim.job_id is not None:
        params["p_job_id"] = claim.job_id
    elif claim.queue is not None:
        params["p_queue"] = claim.queue
    return template, params


def _conditions(claim: Claim) -> list[Any]:
    conds = [filters.runnable(claim.now), *filters.where_clause(claim.where, claim.now)]
    if claim.job_id is not None:
        conds.append(jobs.c.id == claim.job_id)
    elif claim.queue is not None:
        conds.append(jobs.c.queue == claim.queue)
    return conds


def claim_order(order: str) -> list[Any]:
    """Higher priority first, then the processing order (as the claim index holds it)."""
    return [jobs.c.priority.desc(), *filters.order_by(order)]


def _candidates(claim: Claim) -> Any:
    order = claim_order(claim.order)
    if claim.keyed:
        return _keyed_candidates(claim, order)
    return (
        select(jobs.c.id)
        .where(*_conditions(claim))
        .order_by(*order)
        .limit(claim.limit)
        .with_for_update(skip_locked=True)
    )


def _keyed_candidates(claim: Claim, order: Any) -> Any:
    """Skip keys held by a live lease, and take one job per exclusive key (first in order).

    The caller holds the backend's keyed-claim lock, so under READ COMMITTED this
    statement's snapshot sees every lease an earlier keyed claim committed. The runnable
    conditions are repeated on the locking select because PostgreSQL re-checks only that
    level's conditions against a row changed since the snapshot (say, cancelled meanwhile).
    """
    held = select(jobs.c.concurrency_key).where(
        jobs.c.concurrency_key.is_not(None),
        jobs.c.exclusive == true(),
        jobs.c.processing_until > claim.now,
    )
    free = or_(
        jobs.c.concurrency_key.is_(None),
        jobs.c.exclusive == false(),
        jobs.c.concurrency_key.not_in(held),
    )
    rank = func.row_number().over(
        partition_by=[jobs.c.concurrency_key, jobs.c.exclusive], order_by=order
    )
    ranked = (
        select(jobs.c.id, jobs.c.concurrency_key, jobs.c.exclusive, rank.label("rank"))
        .where(*_conditions(claim), free)
        .subquery()
    )
    first = select(ranked.c.id).where(
        or_(
            ranked.c.concurrency_key.is_(None),
            ranked.c.exclusive == false(),
            ranked.c.rank == 1,
        )
    )
    return (
        select(jobs.c.id)
        .where(jobs.c.id.in_(first), *_conditions(claim))
        .order_by(*order)
        .limit(claim.limit)
        .with_for_update(skip_locked=True)
    )


def _claim_update(claim: Claim) -> Any:
    return (
        update(jobs)
        .where(jobs.c.id.in_(_candidates(claim)))
        .values(processing_until=claim.until, processing_token=claim.token, updated_at=claim.now)
        .returning(*jobs.c)
    )


@functools.lru_cache(maxsize=64)
def _claim_template(order: str, keyed: bool, by_queue: bool, by_id: bool) -> Any:
    template = Claim(
        now=_param("p_now", UTCDateTime()),
        until=_param("p_until", UTCDateTime()),
        token=_param("p_token"),
        limit=_param("p_limit"),
        order=order,
        queue=_param("p_queue") if by_queue and not by_id else None,
        job_id=_param("p_job_id") if by_id else None,
        keyed=keyed,
    )
    return _claim_update(template)


def _param(name: str, type_: Any = None) -> Any:
    """A bind parameter standing in for a claim's value in a prebuilt statement."""
    return bindparam(name, type_=type_)
