"""Debian's Chromium for the browser tests, through Playwright's Python package (never a downloaded
browser). Where the binary is absent the tests skip, except under `make test` (RAG_REQUIRE_BROWSER=1)
or CI (CI=true), where they fail: there a green run must mean the whole suite ran. The `browser`
fixture lives in tests/api/conftest.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = f"no Chromium at {CHROMIUM} (install it: apt-get install chromium)"
BROWSER_REQUIRED = os.environ.get("RAG_REQUIRE_BROWSER") == "1" or os.environ.get("CI", "").lower() == "true"

# Where the browser is required, the tests run and the `browser` fixture fails with NO_CHROMIUM.
needs_chromium = pytest.mark.skipif(not CHROMIUM.exists() and not BROWSER_REQUIRED, reason=NO_CHROMIUM)


@contextmanager
def chromium() -> Iterator[object]:
    """A launched headless Chromium; skips (or fails where required) without the binary."""
    if not CHROMIUM.exists():
        if BROWSER_REQUIRED:
            pytest.fail(f"{NO_CHROMIUM}; required under make test and CI", pytrace=False)
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()
