"""Schema upgrades: what a database made by an older asyncjobs needs, version by version."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Column, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.errors import StorageError
from asyncjobs.storage.tables import SCHEMA_VERSION, jobs, schema_version

# The columns each version added to ``asyncjobs_jobs`` (nullable, or NOT NULL with a server
# default, so old rows stay valid).
ADDED_COLUMNS: dict[int, tuple[Column[Any], ...]] = {
    2: (jobs.c.trace_context,),
    3: (jobs.c.output,),
    4: (jobs.c.priority,),
    5: (jobs.c.idempotency_key,),
    6: (jobs.c.parent_id, jobs.c.suspended),
}
# Indexes a version replaced (the claim index gained ``priority``).
DROPPED_INDEXES: dict[int, tuple[str, ...]] = {
    4: ("ix_asyncjobs_jobs_runnable",),
}


async def check_version(conn: AsyncConnection) -> None:
    """Record the version of a new schema, upgrade an older one, refuse a newer one."""
    found = (await conn.execute(select(schema_version.c.version))).scalar()
    if found is None:
        await conn.execute(insert(schema_version).values(id=1, version=SCHEMA_VERSION))
    elif found < SCHEMA_VERSION:
        await upgrade(conn, found)
    elif found > SCHEMA_VERSION:
        raise StorageError(
            f"the database schema is version {found}, newer than this asyncjobs "
            f"(version {SCHEMA_VERSION}); upgrade asyncjobs"
        )


async def upgrade(conn: AsyncConnection, found: int) -> None:
    """Bring a schema at version ``found`` to ``SCHEMA_VERSION`` (the schema lock is held)."""
    for version in range(found + 1, SCHEMA_VERSION + 1):
        for column in ADDED_COLUMNS.get(version, ()):
            await conn.execute(text(_add_column(column, conn)))
        for name in DROPPED_INDEXES.get(version, ()):
            await conn.execute(text(f'DROP INDEX IF EXISTS "{name}"'))
    # Indexes added since (the dashboard's, the idempotency keys') are created where missing.
    await conn.run_sync(_create_missing_indexes)
    await conn.execute(update(schema_version).values(version=SCHEMA_VERSION))


def _add_column(column: Column[Any], conn: AsyncConnection) -> str:
    kind = column.type.compile(dialect=conn.dialect)
    sql = f'ALTER TABLE {jobs.name} ADD COLUMN "{column.name}" {kind}'
    default = column.server_default
    if default is not None:  # what the rows already there read
        sql += f" DEFAULT {default.arg}"  # type: ignore[attr-defined]
    if not column.nullable:
        sql += " NOT NULL"
    return sql


def _create_missing_indexes(sync_conn: Any) -> None:
    for index in sorted(jobs.indexes, key=lambda index: str(index.name)):
        index.create(sync_conn, checkfirst=True)
