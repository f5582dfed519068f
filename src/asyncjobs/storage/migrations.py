"""Schema upgrades: what a database made by an older asyncjobs needs, version by version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.storage.tables import SCHEMA_VERSION, jobs, schema_version

# The columns each version added to ``asyncjobs_jobs`` (all nullable, so old rows stay valid).
ADDED_COLUMNS: dict[int, tuple[Column[Any], ...]] = {
    2: (jobs.c.trace_context,),
    3: (jobs.c.output,),
    6: (jobs.c.parent_id, jobs.c.suspended),
}


async def upgrade(conn: AsyncConnection, found: int) -> None:
    """Bring a schema at version ``found`` to ``SCHEMA_VERSION`` (the schema lock is held)."""
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for column in ADDED_COLUMNS.get(version, ()):
            kind = column.type.compile(dialect=conn.dialect)
            await conn.execute(text(f'ALTER TABLE {jobs.name} ADD COLUMN "{column.name}" {kind}'))
    # Indexes added since (the dashboard's) are created where missing.
    await conn.run_sync(_create_missing_indexes)
    await conn.execute(update(schema_version).values(version=SCHEMA_VERSION))


def _create_missing_indexes(sync_conn: Any) -> None:
    for index in sorted(jobs.indexes, key=lambda index: str(index.name)):
        index.create(sync_conn, checkfirst=True)
