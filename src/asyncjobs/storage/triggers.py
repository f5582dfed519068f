"""The triggers behind durable waits (both backends): a child that finishes, or is deleted
before it finishes, signals and wakes its parent in that same transaction; a deleted job's
signals go with it."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from asyncjobs.checks import CHILD_TOPIC
from asyncjobs.storage.notify import CHANNEL

_CHILD_FINISHED = (
    "NEW.parent_id IS NOT NULL AND (NEW.completed_at IS NOT NULL OR NEW.has_error) "
    "AND OLD.completed_at IS NULL AND NOT OLD.has_error"
)
# Only superseding deletes an unfinished job (one that never ran): its parent must not wait on.
_CHILD_DROPPED = "OLD.parent_id IS NOT NULL AND OLD.completed_at IS NULL AND NOT OLD.has_error"
_WAKE_PARENT = (
    "UPDATE asyncjobs_jobs SET wait_until = CASE WHEN suspended THEN NULL ELSE wait_until END, "
    "suspended = NULL WHERE id = {row}.parent_id AND completed_at IS NULL AND NOT has_error"
)
_DROPPED_MESSAGE = (
    "' was superseded by a newer job with its concurrency key before it ran'"  # after the id
)
_SQLITE_DROPPED_ERROR = (
    "json_object('name', 'Superseded', 'message', 'job ' || OLD.id || " + _DROPPED_MESSAGE + ")"
)
_POSTGRES_DROPPED_ERROR = (
    "jsonb_build_object('name', 'Superseded', 'message', 'job ' || OLD.id || "
    + _DROPPED_MESSAGE
    + ")"
)
_SQLITE_DDL = (
    f"""
    CREATE TRIGGER IF NOT EXISTS asyncjobs_child_finished
    AFTER UPDATE OF completed_at, has_error ON asyncjobs_jobs
    FOR EACH ROW WHEN {_CHILD_FINISHED}
    BEGIN
        INSERT INTO asyncjobs_signals (job_id, topic, payload, created_at)
        VALUES (NEW.parent_id, '{CHILD_TOPIC}' || NEW.id, json_object('child', NEW.id,
                'output', json(NEW.output), 'error', json(NEW.error)), NEW.updated_at);
        {_WAKE_PARENT.format(row="NEW")};
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS asyncjobs_job_deleted AFTER DELETE ON asyncjobs_jobs
    FOR EACH ROW BEGIN DELETE FROM asyncjobs_signals WHERE job_id = OLD.id; END
    """,
    f"""
    CREATE TRIGGER IF NOT EXISTS asyncjobs_child_dropped AFTER DELETE ON asyncjobs_jobs
    FOR EACH ROW WHEN {_CHILD_DROPPED}
    BEGIN
        INSERT INTO asyncjobs_signals (job_id, topic, payload, created_at)
        SELECT OLD.parent_id, '{CHILD_TOPIC}' || OLD.id, json_object('child', OLD.id,
               'output', NULL, 'error', {_SQLITE_DROPPED_ERROR}), OLD.updated_at
        WHERE EXISTS (SELECT 1 FROM asyncjobs_jobs WHERE id = OLD.parent_id);
        {_WAKE_PARENT.format(row="OLD")};
    END
    """,
)


def _postgres_wake(row: str) -> str:
    """plpgsql: wake the parent of ``row`` and NOTIFY its queue when it is runnable now."""
    return f"""
        {_WAKE_PARENT.format(row=row)} RETURNING queue, wait_until INTO woken, due;
        IF woken IS NOT NULL AND due IS NULL THEN
            PERFORM pg_notify('{CHANNEL}', woken || '  ');
        END IF;
    """


def _postgres_trigger(name: str, event: str, when: str) -> tuple[str, str]:
    return (
        f"DROP TRIGGER IF EXISTS {name} ON asyncjobs_jobs",
        f"""
        CREATE TRIGGER {name} AFTER {event} ON asyncjobs_jobs FOR EACH ROW WHEN ({when})
        EXECUTE FUNCTION {name}()
        """,
    )


_POSTGRES_DDL = (
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_child_finished() RETURNS trigger AS $$
    DECLARE woken text; due timestamptz;
    BEGIN
        INSERT INTO asyncjobs_signals (job_id, topic, payload, created_at)
        VALUES (NEW.parent_id, '{CHILD_TOPIC}' || NEW.id, jsonb_build_object('child', NEW.id,
                'output', NEW.output, 'error', NEW.error), NEW.updated_at);
        {_postgres_wake("NEW")}
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    *_postgres_trigger(
        "asyncjobs_child_finished", "UPDATE OF completed_at, has_error", _CHILD_FINISHED
    ),
    # Once per statement, over the rows it deleted: a function call per row would cost a
    # third more per deleted job (completions that delete their job are the hot path).
    """
    CREATE OR REPLACE FUNCTION asyncjobs_job_deleted() RETURNS trigger AS $$
    BEGIN
        DELETE FROM asyncjobs_signals WHERE job_id IN (SELECT id FROM deleted_jobs);
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    "DROP TRIGGER IF EXISTS asyncjobs_job_deleted ON asyncjobs_jobs",
    """
    CREATE TRIGGER asyncjobs_job_deleted AFTER DELETE ON asyncjobs_jobs
    REFERENCING OLD TABLE AS deleted_jobs FOR EACH STATEMENT
    EXECUTE FUNCTION asyncjobs_job_deleted()
    """,
    f"""
    CREATE OR REPLACE FUNCTION asyncjobs_child_dropped() RETURNS trigger AS $$
    DECLARE woken text; due timestamptz;
    BEGIN
        INSERT INTO asyncjobs_signals (job_id, topic, payload, created_at)
        SELECT OLD.parent_id, '{CHILD_TOPIC}' || OLD.id, jsonb_build_object('child', OLD.id,
               'output', NULL, 'error', {_POSTGRES_DROPPED_ERROR}), OLD.updated_at
        WHERE EXISTS (SELECT 1 FROM asyncjobs_jobs WHERE id = OLD.parent_id);
        {_postgres_wake("OLD")}
        RETURN NULL;
    END $$ LANGUAGE plpgsql
    """,
    *_postgres_trigger("asyncjobs_child_dropped", "DELETE", _CHILD_DROPPED),
)


async def install(conn: AsyncConnection) -> None:
    """Create or refresh the triggers (the schema lock is held)."""
    postgres = conn.dialect.name == "postgresql"
    for statement in _POSTGRES_DDL if postgres else _SQLITE_DDL:
        await conn.execute(text(statement))
