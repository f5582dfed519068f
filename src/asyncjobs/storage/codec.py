"""Job column values as one backend's driver takes and returns them, converted by the columns'
own SQLAlchemy types, so rows written by direct driver calls read the same through SQLAlchemy,
and the reverse."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Dialect
from sqlalchemy.types import TypeEngine

from asyncjobs.storage.tables import COLUMNS, jobs

Row = dict[str, Any]
Processor = Callable[[Any], Any] | None


class Codec:
    """How one dialect's driver takes and returns our column values."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.encoders = {c.name: bind_processor(c.type, dialect) for c in jobs.c}
        decoders = {
            c.name: c.type.dialect_impl(dialect).result_processor(dialect, None) for c in jobs.c
        }
        self._decoders = [(name, fn) for name, fn in decoders.items() if fn is not None]
        self._decoder = dict(self._decoders)
        time = self.encoders["updated_at"]
        assert time is not None  # UTCDateTime always checks and converts
        self.time = time
        # A column's value when an inserted row leaves it out (the column's own default).
        self._defaults = {c.name: cast(Any, c.default).arg for c in jobs.c if c.default is not None}

    def default(self, name: str) -> Any:
        """Column ``name``'s value when an inserted row leaves it out."""
        return self._defaults.get(name)

    def decode(self, name: str, value: Any) -> Any:
        """One value of column ``name`` as the driver returned it, as SQLAlchemy reads it."""
        decoder = self._decoder.get(name)
        return value if decoder is None else decoder(value)

    def encode(self, name: str, value: Any) -> Any:
        encoder = self.encoders[name]
        return value if encoder is None else encoder(value)

    def column(self, name: str, rows: Sequence[Row]) -> list[Any]:
        """One column of ``rows`` to insert, encoded; a missing value takes the default."""
        return self.encoded(name, self.values(name, rows))

    def values(self, name: str, rows: Sequence[Row]) -> list[Any]:
        """One column of ``rows`` to insert, as given; a missing value takes the default."""
        default = self._defaults.get(name)
        return [row.get(name, default) for row in rows]

    def encoded(self, name: str, values: list[Any]) -> list[Any]:
        encoder = self.encoders[name]
        return values if encoder is None else _converted(encoder, values)

    def decode_row(self, values: Sequence[Any]) -> Row:
        """A ``RETURNING`` row of every column, as SQLAlchemy reads it (whose conversions all
        read ``None`` as ``None``)."""
        row = dict(zip(COLUMNS, values, strict=True))
        for name, decode in self._decoders:
            value = row[name]
            if value is not None:
                row[name] = decode(value)
        return row


def _converted(encode: Callable[[Any], Any], values: list[Any]) -> list[Any]:
    """Each of ``values`` encoded; a value that is the one before it (the batch's one ``now``,
    a column left out, ``None``) is encoded once for the run."""
    encoded: list[Any] = []
    last: Any = _NOTHING
    done: Any = None
    for value in values:
        if value is not last:
            last, done = value, encode(value)
        encoded.append(done)
    return encoded


_NOTHING = object()


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Processor:
    """How ``type_`` converts a value for ``dialect``'s driver; ``None``: as it is."""
    return type_.dialect_impl(dialect).bind_processor(dialect)


class Compiled:
    """A SQLAlchemy statement compiled once to the driver's SQL, parameter order and each
    parameter's conversion."""

    def __init__(self, statement: Any, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql: str = compiled.string
        names = tuple(compiled.positiontup or ())
        self.defaults: dict[str, Any] = dict(compiled.params)
        self.params = [(name, bind_processor(compiled.binds[name].type, dialect)) for name in names]

    def args(self, params: Mapping[str, Any]) -> list[Any]:
        values = {**self.defaults, **params}
        return [
            values[name] if encode is None else encode(values[name]) for name, encode in self.params
        ]
