"""The values asyncjobs stores as JSON: checked before anything is written.

Inputs, meta and step outputs are stored as JSON on both backends. What ``json.dumps`` refuses
fails the call that made it, with a message naming the value; so do NaN and infinities, the
NUL character and unpaired surrogates, which SQLite would store but PostgreSQL's ``jsonb``
refuses, so that a value behaves the same on either backend.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, TypeVar

from asyncjobs.errors import ValidationError

T = TypeVar("T")

# ints json.dumps writes without meeting the interpreter's int-to-str digit limit
_INT_BOUND = 1 << 63
_PLAIN_DEPTH = 32  # deeper values are left to json.dumps, which also spots cycles
# NUL as json.dumps escapes it: "\\u0000" preceded by an even number of backslashes
_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def checked(value: T, what: str) -> T:
    """``value`` itself, once it is known to store the same on both backends.

    Raises:
        ValidationError: naming ``what`` and the problem.
    """
    if _plain(value, 0):
        return value  # json.dumps takes it as it is: skip serialising it just to check
    try:
        text = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise ValidationError(f"{what} must be JSON-serialisable: {exc}") from None
    if _NUL.search(text):
        raise ValidationError(f"{what} must not contain the NUL character (\\u0000)")
    if not _encodable(text):
        raise ValidationError(f"{what} must not contain an unpaired surrogate (\\ud800-\\udfff)")
    return value


def _encodable(text: str) -> bool:
    """Whether ``text`` is valid Unicode: no unpaired surrogate, which UTF-8 cannot encode."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any, depth: int) -> bool:
    """Whether ``value`` is built only of values that surely store alike on both backends.

    ``False`` is no verdict: the caller then asks ``json.dumps`` itself.
    """
    kind = type(value)
    if kind is str:
        return "\x00" not in value and _encodable(value)
    if kind is bool or value is None:
        return True
    if kind is float:
        return math.isfinite(value)
    if kind is int:
        return bool(-_INT_BOUND < value < _INT_BOUND)
    if depth >= _PLAIN_DEPTH:
        return False
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not _plain(key, depth) or not _plain(item, depth + 1):
                return False
        return True
    if kind is list:
        return all(_plain(item, depth + 1) for item in value)
    return False
