"""Handlers referenced by import strings in the tests."""

from __future__ import annotations


async def triple(*, input: dict[str, int]) -> dict[str, int]:
    return {"value": input["n"] * 3}
