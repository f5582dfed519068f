"""The raw SQL of the hot path, written once per dialect: fenced updates and deletes of owned
jobs, multi-row inserts, PostgreSQL's relaxed commit."""

from __future__ import annotations

import functools

from asyncjobs.storage.tables import COLUMNS, INSERT_COLUMNS

RELAX = "SET synchronous_commit = off"
_RETURN_ALL = ", ".join(f'"{name}"' for name in COLUMNS)


@functools.cache
def delete_sql(dialect: str) -> str:
    if dialect == "sqlite":
        ids = "id IN (SELECT value FROM json_each(?))"
        return (
            f"DELETE FROM asyncjobs_jobs WHERE {ids} AND processing_token = ? "
            "AND processing_until > ? RETURNING id"
        )
    return (
        "DELETE FROM asyncjobs_jobs WHERE id = ANY($1::bigint[]) AND processing_token = $2 "
        "AND processing_until > $3 RETURNING id"
    )


@functools.cache
def complete_sql(dialect: str) -> str:
    """Complete owned jobs; a job whose log changed gets its new log in the same statement."""
    if dialect == "sqlite":
        return (
            "UPDATE asyncjobs_jobs SET completed_at = ?4, processing_until = NULL, "
            "processing_token = NULL, total_tried = total_tried + 1, updated_at = ?4, "
            "log = COALESCE((SELECT l.value FROM json_each(?5) AS l "
            "WHERE l.key = CAST(asyncjobs_jobs.id AS TEXT)), log) "
            "WHERE id IN (SELECT value FROM json_each(?1)) AND processing_token = ?2 "
            "AND processing_until > ?3 RETURNING id"
        )
    return (
        "UPDATE asyncjobs_jobs SET completed_at = $4, processing_until = NULL, "
        "processing_token = NULL, total_tried = total_tried + 1, updated_at = $4, "
        "log = COALESCE((SELECT l.log FROM unnest($5::bigint[], $6::jsonb[]) AS l(id, log) "
        "WHERE l.id = asyncjobs_jobs.id), asyncjobs_jobs.log) "
        "WHERE id = ANY($1::bigint[]) AND processing_token = $2 "
        "AND processing_until > $3 RETURNING id"
    )


@functools.lru_cache(maxsize=64)
def update_sql(dialect: str, names: tuple[str, ...]) -> str:
    unknown = set(names) - set(INSERT_COLUMNS)
    if unknown or not names:
        raise ValueError(f"cannot update job columns {sorted(unknown) or names}")
    marks = [("?" if dialect == "sqlite" else f"${i}") for i in range(1, len(names) + 4)]
    assignments = ", ".join(f'"{name}" = {mark}' for name, mark in zip(names, marks, strict=False))
    key, token, live_after = marks[len(names) :]
    return (
        f"UPDATE asyncjobs_jobs SET {assignments} WHERE id = {key} "
        f"AND processing_token = {token} AND processing_until > {live_after} RETURNING id"
    )


_COLUMN_LIST = ", ".join(f'"{name}"' for name in INSERT_COLUMNS)


@functools.lru_cache(maxsize=32)
def insert_values_sql(count: int) -> str:
    group = "(" + ", ".join("?" * len(INSERT_COLUMNS)) + ")"
    values = ", ".join([group] * count)
    return f"INSERT INTO asyncjobs_jobs ({_COLUMN_LIST}) VALUES {values} RETURNING {_RETURN_ALL}"


_PG_ARRAY_TYPES: dict[str, str] = {
    "queue": "varchar",
    "task_slug": "varchar",
    "workflow_slug": "varchar",
    "input": "jsonb",
    "meta": "jsonb",
    "wait_until": "timestamptz",
    "processing_until": "timestamptz",
    "processing_token": "varchar",
    "completed_at": "timestamptz",
    "has_error": "boolean",
    "error": "jsonb",
    "total_tried": "integer",
    "log": "jsonb",
    "trace_context": "jsonb",
    "concurrency_key": "varchar",
    "exclusive": "boolean",
    "created_at": "timestamptz",
    "updated_at": "timestamptz",
}


@functools.cache
def insert_unnest_sql() -> str:
    """One statement for any number of rows: each column is one array parameter."""
    arrays = ", ".join(
        f"${i}::{_PG_ARRAY_TYPES[name]}[]" for i, name in enumerate(INSERT_COLUMNS, start=1)
    )
    return (
        f"INSERT INTO asyncjobs_jobs ({_COLUMN_LIST}) SELECT * FROM unnest({arrays}) "
        f"RETURNING {_RETURN_ALL}"
    )
