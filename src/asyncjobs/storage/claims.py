"""What one claim asks for, and the SQLAlchemy statements that lease the matching jobs."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, false, func, or_, select, true, update

from asyncjobs.storage import filters
from asyncjobs.storage.tables import UTCDateTime, jobs


class Claim:
    """What one claim asks for; builds the candidate query."""

    def __init__(
        self,
        *,
        now: datetime,
        until: datetime,
        token: str,
        limit: int,
        order: str,
        queue: str | None = None,
        job_id: int | None = None,
        where: Mapping[str, Any] | None = None,
        keyed: bool = False,
    ) -> None:
        self.now, self.until, self.token, self.limit = now, until, token, limit
        self.order, self.queue, self.job_id, self.where, self.keyed = (
            order,
            queue,
            job_id,
            where,
            keyed,
        )

    def statement(self) -> tuple[Any, dict[str, Any]]:
        """The claim's UPDATE and its parameters; prebuilt unless ``where`` filters are given.

        Building the statement and its cache key took longer than the database needed to run
        it, so the common shapes are built once with bind parameters.
        """
        if self.where:
            return _claim_update(self), {}
        template = _claim_template(
            self.order, self.keyed, self.queue is not None, self.job_id is not None
        )
        params: dict[str, Any] = {
            "p_now": self.now,
            "p_until": self.until,
            "p_token": self.token,
            "p_limit": self.limit,
        }
        if self.job_id is not None:
            params["p_job_id"] = self.job_id
        elif self.queue is not None:
            params["p_queue"] = self.queue
        return template, params

    def conditions(self) -> list[Any]:
        conds = [filters.runnable(self.now), *filters.where_clause(self.where, self.now)]
        if self.job_id is not None:
            conds.append(jobs.c.id == self.job_id)
        elif self.queue is not None:
            conds.append(jobs.c.queue == self.queue)
        return conds

    def candidates(self) -> Any:
        order = filters.order_by(self.order)
        if self.keyed:
            return self._keyed_candidates(order)
        return (
            select(jobs.c.id)
            .where(*self.conditions())
            .order_by(*order)
            .limit(self.limit)
            .with_for_update(skip_locked=True)
        )

    def _keyed_candidates(self, order: Any) -> Any:
        """Skip keys held by a live lease, and take one job per exclusive key (first in order).

        The caller holds ``dialects.lock_keyed_claims``, so under READ COMMITTED this
        statement's snapshot sees every lease an earlier keyed claim committed. The runnable
        conditions are repeated on the locking select because PostgreSQL re-checks only that
        level's conditions against a row changed since the snapshot (say, cancelled meanwhile).
        """
        held = select(jobs.c.concurrency_key).where(
            jobs.c.concurrency_key.is_not(None),
            jobs.c.exclusive == true(),
            jobs.c.processing_until > self.now,
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
            .where(*self.conditions(), free)
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
            .where(jobs.c.id.in_(first), *self.conditions())
            .order_by(*order)
            .limit(self.limit)
            .with_for_update(skip_locked=True)
        )


def _claim_update(claim: Claim) -> Any:
    return (
        update(jobs)
        .where(jobs.c.id.in_(claim.candidates()))
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
