"""The claim/complete floor again, through SQLAlchemy Core async (no asyncjobs): how much of the
gap between the driver and asyncjobs SQLAlchemy itself accounts for."""

from __future__ import annotations

import uuid
from typing import Any

from drivers import LEASE, SQLITE_PRAGMAS, sqlite_time, utcnow
from measure import Deadline, Rate
from sqlalchemy import bindparam, event, text
from sqlalchemy.ext.asyncio import create_async_engine

_CLAIM = """UPDATE asyncjobs_jobs SET processing_until = :until, processing_token = :token,
    updated_at = :now WHERE id IN (SELECT id FROM asyncjobs_jobs
    WHERE completed_at IS NULL AND has_error = {false}
    AND (processing_until IS NULL OR processing_until <= :now)
    AND (wait_until IS NULL OR wait_until <= :now) AND queue = 'default'
    ORDER BY priority DESC, created_at, id LIMIT :limit{lock})
    RETURNING id, task_slug, workflow_slug, input, total_tried, log"""
_COMPLETE = """UPDATE asyncjobs_jobs SET completed_at = :now, processing_until = NULL,
    processing_token = NULL, total_tried = total_tried + 1, updated_at = :now
    WHERE id IN :ids AND processing_token = :token AND processing_until > :now"""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    for pragma in SQLITE_PRAGMAS:
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


async def claim_complete(url: str, *, limit: int, n: int, cap: float) -> Rate:
    """Each statement in its own ``engine.begin()`` block, as a pooled application would."""
    engine = create_async_engine(url)
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    claim = text(
        _CLAIM.format(
            false="0" if sqlite else "false", lock="" if sqlite else " FOR UPDATE SKIP LOCKED"
        )
    )
    complete = text(_COMPLETE).bindparams(bindparam("ids", expanding=True))
    stamp = sqlite_time if sqlite else (lambda value: value)
    token, done, deadline = uuid.uuid4().hex, 0, Deadline(cap)
    try:
        while done < n and not deadline.passed:
            now = utcnow()
            params = {"until": stamp(now + LEASE), "token": token, "now": stamp(now)}
            async with engine.begin() as conn:
                rows = (await conn.execute(claim, {**params, "limit": limit})).all()
            ids = [row[0] for row in rows]
            if not ids:
                break
            async with engine.begin() as conn:
                await conn.execute(complete, {"now": stamp(utcnow()), "ids": ids, "token": token})
            done += len(ids)
    finally:
        await engine.dispose()
    return Rate(done, deadline.elapsed(), complete=done >= n)
