"""Fixtures of the HTTP tests: one headless Chromium per test module."""

from __future__ import annotations

import pytest

from browser import chromium


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b
