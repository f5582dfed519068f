"""The SQL of a fenced update of one job, shared by both backends' driver calls."""

from __future__ import annotations

import functools

from asyncjobs.storage.tables import INSERT_COLUMNS


@functools.lru_cache(maxsize=64)
def update_owned_sql(names: tuple[str, ...], mark: str) -> str:
    """Set ``names`` of one job while a token holds its lease: parameters ``{mark}1`` ... are
    the values, then the id, the token and the time the lease must outlive (``?`` marks stay
    plain: each is used once, in order, and sqlite3 deprecates numbered ones)."""
    numbers = range(1, len(names) + 4)
    marks = [mark if mark == "?" else f"{mark}{i}" for i in numbers]
    unknown = set(names) - set(INSERT_COLUMNS)
    if unknown or not names:
        raise ValueError(f"cannot update job columns {sorted(unknown) or names}")
    assignments = ", ".join(f'"{name}" = {mark}' for name, mark in zip(names, marks, strict=False))
    key, token, live_after = marks[len(names) :]
    return (
        f"UPDATE asyncjobs_jobs SET {assignments} WHERE id = {key} "
        f"AND processing_token = {token} AND processing_until > {live_after} RETURNING id"
    )
