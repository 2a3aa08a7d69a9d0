"""`rag serve --ray`: the same HTTP API as a Ray Serve application.

N reader replicas answer `/query`, `/health`, the web page and the rest; `/documents`, where every
write lives, goes to one writer replica, which also merges segments and polls RAG_FEEDS. Every
replica opens the same RAG_INDEX_DIR and picks up each committed generation by opening only its new
segments, so the folder must be one that every node running a replica sees (this machine's disk
when the cluster is on one machine, else a shared volume).

Ray Serve's proxy routes by path prefix and hands the app the path without it; the writer's app is
given the whole path back (`whole_path`) so that it is the same app as `rag serve`'s.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable
from urllib.parse import unquote

from rag.cluster import RayUnavailable, connect, settings_as_values
from rag.config import Settings

READERS, WRITER = "rag", "rag-writer"
WRITES = "/documents"  # POST /documents and DELETE /documents/{id}; GET /documents goes there too
MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
# Serve's controller and proxy reserve no CPU; a replica mostly waits on FAISS and the model, so a
# quarter CPU each lets a 2-CPU node hold the writer and several readers.
REPLICA_CPUS = 0.25


def whole_path(app: Callable) -> Callable:
    """An ASGI app that sees the request's whole path (Serve strips the route prefix into root_path)."""

    async def whole(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] in ("http", "websocket"):
            raw = scope.get("raw_path")
            path = unquote(raw.decode("latin-1")) if raw else scope.get("root_path", "") + scope["path"]
            scope = {**scope, "path": path, "root_path": ""}
        await app(scope, receive, send)

    return whole


def deployments(settings: Settings, metrics_dir: str | None = None):  # type: ignore[no-untyped-def]
    """The reader and writer deployments over `settings` (made here: `ray` is an optional import).
    With `metrics_dir` every replica keeps its Prometheus counts there (api/metrics.py), so any
    replica's /metrics adds up all of them."""
    from ray import serve

    # A replica is the service itself: it checks RAG_API_KEYS and calls the LLM, so it gets every setting.
    values = settings_as_values(settings)

    class Replica:
        """The API over a Service of its own; the writer's also merges segments and polls feeds,
        and sees the whole path."""

        WRITES = False

        def __init__(self) -> None:
            from rag.service import Service

            if os.environ.get(MULTIPROC_VARIABLE):  # another node than the driver's has no such folder yet
                os.makedirs(os.environ[MULTIPROC_VARIABLE], exist_ok=True)

            self.service = Service(Settings(**values))

        def __serve_build_asgi_app__(self):  # type: ignore[no-untyped-def]
            from api.app import create_app

            app = create_app(self.service, background_work=self.WRITES)
            return whole_path(app) if self.WRITES else app

    options: dict = {"num_cpus": REPLICA_CPUS}
    if metrics_dir is not None:
        options["runtime_env"] = {"env_vars": {MULTIPROC_VARIABLE: metrics_dir}}

    @serve.deployment(ray_actor_options=options)
    @serve.ingress()
    class Reader(Replica):
        pass

    @serve.deployment(ray_actor_options=options, num_replicas=1)
    @serve.ingress()
    class Writer(Replica):
        WRITES = True

    return Reader, Writer


def run(settings: Settings, address: str | None, replicas: int, host: str, port: int, on_ready: Callable[[], None]) -> None:
    """Deploy on the cluster at `address` (None: a Ray started here), call `on_ready`, and serve
    until SIGINT or SIGTERM; then take the applications down again."""
    ray = connect(address)
    from ray import serve

    stop = threading.Event()
    # Replicas on this machine share one fresh folder; on several machines, set
    # PROMETHEUS_MULTIPROC_DIR to a folder every node sees, as RAG_INDEX_DIR must be.
    metrics_dir = os.environ.get(MULTIPROC_VARIABLE) or tempfile.mkdtemp(prefix="rag-metrics-")
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        # HeadOnly: one proxy, on the head, is the one address clients use
        serve.start(http_options={"host": host, "port": port}, proxy_location="HeadOnly")
        Reader, Writer = deployments(settings, metrics_dir)
        serve.run(Writer.bind(), name=WRITER, route_prefix=WRITES)
        serve.run(Reader.options(num_replicas=replicas).bind(), name=READERS, route_prefix="/")
        on_ready()
        stop.wait()
    except (ray.exceptions.RayError, RuntimeError) as exc:
        raise RayUnavailable(f"Ray Serve could not deploy the API: {exc}") from None
    finally:
        _take_down(serve, local=address is None)
        ray.shutdown()
        if not os.environ.get(MULTIPROC_VARIABLE):
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _take_down(serve, local: bool) -> None:  # type: ignore[no-untyped-def]
    """Remove this service's applications from a cluster (Serve is detached: they would outlive
    this process). A Ray started here goes with `ray.shutdown`, and Ctrl-C may have stopped its
    processes already (the terminal signals the whole process group), so it is not asked."""
    if local:
        return
    try:
        for name in (READERS, WRITER):
            serve.delete(name)
    except Exception:  # noqa: BLE001 - the cluster may be gone already; nothing left to take down
        pass
