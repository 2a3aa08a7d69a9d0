"""FastAPI app: translates HTTP to `rag.Service` calls and back. Knows nothing of FAISS.

Each concern lives in its own router module; this file only assembles them.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from rag.config import Settings
from rag.service import Service

from . import routes_timeline, routes_watches
from . import (
    errors, mcp_server, metrics, openapi, origins, routes_documents, routes_query, routes_stream, security, tracing, web,
)
from .bodies import StrictJSONBodies
from .deps import ServiceHolder


@asynccontextmanager
async def background(app: FastAPI) -> AsyncIterator[None]:
    """While the server runs: segments merged by a background thread (so no request waits for a
    merge), and RAG_FEEDS polled by another, each poll's summary line to the server's terminal.
    Both stop at shutdown."""
    holder: ServiceHolder = app.state.holder
    service = await run_in_threadpool(holder.get) if holder.ready or holder.settings.feed_urls else None
    if service is not None:
        service.start_maintenance()
        service.start_watching(on_event=lambda line: print(line, file=sys.stderr, flush=True))
    try:
        yield
    finally:
        if service is not None:
            await run_in_threadpool(service.stop_watching)
            await run_in_threadpool(service.stop_maintenance)


def create_app(service: Service | None = None, settings: Settings | None = None, background_work: bool = True) -> FastAPI:
    """The app over a ready service (tests, `rag serve`) or one built from settings on first use.
    Without `background_work` it neither merges nor polls feeds (a reader replica: one writer does)."""
    app = FastAPI(
        title="News RAG",
        version="0.1.0",
        description="Ask questions of a collection of news articles; every passage cites its article by offsets.",
        redirect_slashes=False,  # no route ends in a slash: `/documents/` is a 404, not a redirect
        lifespan=background if background_work else None,
        # FastAPI traces natively once a global tracer provider is set (api/tracing.py sets one):
        # a second request span and spans per dependency and endpoint, doubling what a request
        # costs to trace. api/tracing.py owns the request's span; its metrics and logs stay.
        telemetry={"tracing": False},
    )
    app.state.holder = ServiceHolder(service, settings)
    errors.install(app)
    app.add_middleware(StrictJSONBodies)  # inside BodyLimit (added next), which bounds what it reads
    security.install(app)
    metrics.install(app)  # /metrics; every request counted and timed
    tracing.install_if_enabled(app)  # spans, only with OTEL_EXPORTER_OTLP_ENDPOINT set
    origins.install(app, app.state.holder.settings)  # outermost: a refused Host or site reaches nothing
    app.include_router(routes_query.router)
    app.include_router(routes_timeline.router)
    app.include_router(routes_stream.router)
    app.include_router(routes_documents.router)
    app.include_router(routes_watches.router)
    app.include_router(web.router)
    mcp_server.install(app)  # MCP over streamable HTTP at /mcp, behind the same middleware
    openapi.install(app)
    return app
