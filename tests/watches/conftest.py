"""Fixtures of the standing-question tests: the loopback news site, a webhook receiver that
verifies signatures, and a service over the seeds that may deliver to loopback."""

import pytest
from newsserver import NewsServer
from webhookreceiver import Receiver


@pytest.fixture()
def site():
    server = NewsServer()
    yield server
    server.close()


@pytest.fixture()
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture()
def watched(make_service):
    """Seeds indexed; loopback webhooks allowed; a failed delivery retried after 0.2 s."""
    service = make_service(fetch_allow_private=True, fetch_timeout_s=2.0, watch_retry_s=0.2)
    service.seed_if_needed()
    return service
