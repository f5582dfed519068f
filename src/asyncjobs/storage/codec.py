"""Job column values as the drivers take and give them on the hot path (no SQLAlchemy types)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from asyncjobs.storage.tables import COLUMNS

Row = dict[str, Any]

_TIMES = frozenset({"wait_until", "processing_until", "completed_at", "created_at", "updated_at"})
_JSON = frozenset({"input", "meta", "error", "log"})
_FLAGS = frozenset({"has_error", "exclusive"})
# A column's value when an inserted row leaves it out (the table's server defaults).
_INSERT_DEFAULTS: dict[str, Any] = {"has_error": False, "total_tried": 0, "exclusive": False}


class Codec:
    """How one backend's driver takes and returns our column values."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        self.encoders = {name: self._encoder(name) for name in COLUMNS}

    def _encoder(self, name: str) -> Callable[[Any], Any] | None:
        """How a column's values are passed to the driver; ``None``: as they are."""
        if name in _JSON:
            return self.json
        if not self.sqlite:  # asyncpg takes aware datetimes and booleans as they are
            return None
        if name in _TIMES:
            return self.time
        return self.flag if name in _FLAGS else None

    def time(self, value: datetime | None) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: asyncjobs needs timezone-aware times")
        if self.sqlite:  # the text SQLAlchemy's SQLite DATETIME stores: naive UTC, sortable
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def json(self, value: Any) -> str | None:
        return None if value is None else json.dumps(value)

    def flag(self, value: Any) -> Any:
        return int(bool(value)) if self.sqlite else bool(value)

    def encode(self, name: str, value: Any) -> Any:
        encoder = self.encoders[name]
        return value if encoder is None else encoder(value)

    def column(self, name: str, rows: Sequence[Row]) -> list[Any]:
        """One column of ``rows`` to insert, encoded; a missing value takes the default."""
        default = _INSERT_DEFAULTS.get(name)
        values = [row.get(name, default) for row in rows]
        encoder = self.encoders[name]
        return values if encoder is None else [encoder(value) for value in values]

    def decode_row(self, values: Sequence[Any]) -> Row:
        """A ``RETURNING`` row of every column, as ``Store`` rows look."""
        row = dict(zip(COLUMNS, values, strict=True))
        for name in _TIMES:
            value = row[name]
            if value is not None:
                row[name] = _parse_time(value) if self.sqlite else _utc(value)
        if self.sqlite:
            # asyncpg's jsonb codec (installed by SQLAlchemy) already hands back Python values,
            # strings included, so only SQLite's text is decoded here.
            for name in _JSON:
                value = row[name]
                if value is not None:
                    row[name] = json.loads(value)
            row["has_error"] = bool(row["has_error"])
            row["exclusive"] = bool(row["exclusive"])
        return row


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _utc(value: datetime) -> datetime:
    # As ``UTCDateTime`` reads it: asyncpg hands back the earliest times naive.
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Compiled:
    """A SQLAlchemy statement compiled once to the driver's SQL and parameter order."""

    def __init__(self, statement: Any, engine: AsyncEngine) -> None:
        compiled = statement.compile(dialect=engine.dialect)
        self.sql: str = compiled.string
        self.names: tuple[str, ...] = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = dict(compiled.params)

    def args(self, params: Mapping[str, Any], codec: Codec) -> list[Any]:
        values = {**self.defaults, **params}
        return [
            codec.time(values[name]) if isinstance(values[name], datetime) else values[name]
            for name in self.names
        ]
