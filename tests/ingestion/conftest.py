"""Fixtures of the ingestion tests: a real news site on loopback (tests/newsserver.py)."""

import pytest
from newsserver import NewsServer


@pytest.fixture()
def site():
    server = NewsServer()
    yield server
    server.close()
