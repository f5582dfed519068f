"""The values asyncjobs stores as JSON: checked before anything is written.

Inputs, meta and step inputs and outputs are stored as JSON on both backends. What
``json.dumps`` refuses fails the call that made it, with a message naming the value; so do NaN
and infinities, the NUL character and unpaired surrogates, which SQLite would store but
PostgreSQL's ``jsonb`` refuses, and keys that are not strings, which ``json.dumps`` would
silently turn into strings (``{1: "a", "1": "b"}`` would lose a value).

Two limits keep one value from breaking the engine or stalling the host's event loop, and may
be changed at startup (they are read on every check):

- :data:`MAX_DEPTH`: how deeply lists and dicts may nest (the value itself is level 1);
- :data:`MAX_BYTES`: how long the value's JSON text may be, in UTF-8 bytes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable
from typing import Any, TypeVar

from asyncjobs.errors import ValidationError

T = TypeVar("T")

MAX_DEPTH = 100
MAX_BYTES = 1_000_000

_CONTAINERS = (dict, list, tuple)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_STR = frozenset({str})
_SCAN = 16
_FLAT, _SHORT, _BIG = 16, 256, 2**63  # what :func:`_plain` takes without serialising
_PLAIN_BYTES = _FLAT * (2 * _SHORT + 8) + 2  # the longest JSON text such a value makes
# NUL as json.dumps escapes it: "\\u0000" preceded by an even number of backslashes
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
_ENCODER = json.JSONEncoder(allow_nan=False, ensure_ascii=False)  # made once, not per call


def checked(value: T, what: str) -> T:
    """``value`` itself, once it is known to store the same on both backends.

    Raises:
        ValidationError: naming ``what`` and the problem.
    """
    if MAX_BYTES >= _PLAIN_BYTES and MAX_DEPTH >= 1 and _plain(value):
        return value  # stores alike as it is: skip serialising it just to check
    check_shape(value, what, keys=True)
    try:
        text = _ENCODER.encode(value)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} must be JSON-serialisable: {exc}") from None
    if "\\u0000" in text and _NUL.search(text):  # the plain search first: it is much faster
        raise ValidationError(f"{what} must not contain the NUL character (\\u0000)")
    size = len(text) if text.isascii() else len(_utf8(text, what))
    if size > MAX_BYTES:
        raise _too_big(what)
    return value


def _plain(value: Any) -> bool:
    """Whether ``value`` is ``None`` or a small flat dict or list of short ASCII strings,
    small ints, bools and ``None`` (the usual input and output), which store alike on both
    backends as they are."""
    if value is None:
        return True
    kind = type(value)
    if kind is dict:
        return (
            len(value) <= _FLAT
            and all(map(_plain_key, value))
            and all(map(_plain_scalar, value.values()))
        )
    return kind is list and len(value) <= _FLAT and all(map(_plain_scalar, value))


def _plain_key(key: Any) -> bool:
    return type(key) is str and len(key) <= _SHORT and key.isascii() and "\x00" not in key


def _plain_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return len(value) <= _SHORT and value.isascii() and "\x00" not in value
    return value is None or kind is bool or (kind is int and -_BIG < value < _BIG)


def check_shape(value: Any, what: str, *, keys: bool = False) -> None:
    """Refuse ``value`` if it nests deeper than :data:`MAX_DEPTH` or surely exceeds
    :data:`MAX_BYTES`, walking its containers only, level by level, without recursion, and
    stopping as soon as a limit is passed; with ``keys``, also if a dict has a key that is not
    a string.

    Raises:
        ValidationError: naming ``what`` and the limit.
    """
    budget = MAX_BYTES  # a lower bound of the JSON text: two bytes per item, five per entry
    level: list[Any] = [value] if isinstance(value, _CONTAINERS) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            raise ValidationError(
                f"{what} must not nest lists and dicts deeper than {MAX_DEPTH} levels "
                "(the limit of a stored value)"
            )
        below: list[Any] = []
        for node in level:
            budget -= 2 * len(node) + 2
            if isinstance(node, dict):
                if keys:
                    _check_keys(node, what)
                budget -= 3 * len(node)  # a key's quotes and colon
                node = node.values()
            if budget < 0:
                raise _too_big(what)
            below += _containers(node)
        level = below


def _containers(items: Collection[Any]) -> Iterable[Any]:
    if len(items) > _SCAN and _SCALARS.issuperset(map(type, items)):
        return ()  # a long run of scalars: one pass in C instead of one check per item
    return [item for item in items if isinstance(item, _CONTAINERS)]


def _check_keys(node: dict[Any, Any], what: str) -> None:
    if _STR.issuperset(map(type, node)):
        return
    for key in node:
        if not isinstance(key, str):
            raise ValidationError(
                f"{what} must have string keys (JSON keys are strings), "
                f"got the {type(key).__name__} key {_brief(key)}"
            )


def _brief(value: Any) -> str:
    try:
        text = repr(value)
    except ValueError:  # an int too long to print
        return "(too long to show)"
    return text if len(text) <= 40 else text[:37] + "..."


def _utf8(text: str, what: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(
            f"{what} must not contain an unpaired surrogate (\\ud800-\\udfff)"
        ) from None


def _too_big(what: str) -> ValidationError:
    return ValidationError(
        f"{what} must not be larger than {MAX_BYTES:,} bytes as JSON (the limit of a stored value)"
    )


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored alike on both backends as text, or ``None``."""
    if "\x00" in value:
        return "must not contain the NUL character (\\u0000)"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return "must not contain an unpaired surrogate (\\ud800-\\udfff)"
    return None
