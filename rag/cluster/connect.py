"""Ray imported on demand and a driver connected to a cluster, or to a Ray started for this process."""

from __future__ import annotations

import os

INSTALL_HINT = "Ray is not installed: pip install 'rag-news[ray]' (or .venv/bin/pip install -e '.[ray]')"


class RayUnavailable(RuntimeError):
    """The cluster cannot be reached, or stopped making progress."""


class RayNotInstalled(RayUnavailable):
    """The `ray` extra is not installed."""


def import_ray():  # type: ignore[no-untyped-def]
    """The `ray` module with Ray Data and Serve; RayNotInstalled (with how to install) without the extra."""
    os.environ.setdefault("RAY_DATA_LOG_LEVEL", "ERROR")  # read when ray.data is imported
    try:
        import ray
        import ray.data  # noqa: F401
        from ray import serve  # noqa: F401
    except ImportError:
        raise RayNotInstalled(INSTALL_HINT) from None
    return ray


def connect(address: str | None):  # type: ignore[no-untyped-def]
    """Join the cluster at `address` (host:port, ray://host:port or auto), or start a Ray on this
    machine for this process when None; returns the `ray` module."""
    ray = import_ray()
    kwargs = {"logging_level": "ERROR", "log_to_driver": False, "ignore_reinit_error": True}
    try:
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(include_dashboard=False, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address or 'a local Ray'}: {exc}") from None
    return ray
