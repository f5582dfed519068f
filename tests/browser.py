"""Headless Chromium for the dashboard's browser tests, driven by Playwright.

Debian's ``chromium`` package is used (``playwright install`` needs a download). Without it
the browser tests are skipped with a notice, unless ``ASYNCJOBS_REQUIRE_BROWSER`` is set.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

REQUIRE_ENV = "ASYNCJOBS_REQUIRE_BROWSER"
CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    """The Chromium to drive; skips the test (or fails it, when required) if there is none."""
    found = next((path for path in CANDIDATES if os.access(path, os.X_OK)), None)
    found = found or shutil.which("chromium")
    problem = None
    if found is None:
        problem = "no Chromium found (apt-get install chromium)"
    else:
        try:
            import playwright.async_api  # noqa: F401
        except ImportError:
            problem = "Playwright is not installed (pip install playwright)"
    if problem is None and found is not None:
        return found
    if os.environ.get(REQUIRE_ENV):
        pytest.fail(f"{REQUIRE_ENV} is set but {problem}")
    pytest.skip(f"browser tests skipped: {problem}")


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    """A headless Chromium, closed afterwards."""
    from playwright.async_api import async_playwright

    path = chromium()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()
