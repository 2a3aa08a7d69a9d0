"""One real two-node Ray cluster for the module's tests (started once: ~25 s on two cores)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray", reason="the `ray` extra is not installed (make test installs it)")

from eval.ray_cluster import Cluster  # noqa: E402


@pytest.fixture(scope="session")
def ray_cluster():
    cluster = Cluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
