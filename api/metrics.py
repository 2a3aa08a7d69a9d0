"""`GET /metrics` in Prometheus's text format (prometheus-client), protected like every read.

Series (all prefixed `rag_`):
- `http_requests_total{method,route,status}` and `http_request_duration_seconds{method,route}`:
  every request, by its route's template (`/documents/{doc_id}`; `unmatched` for no route);
- `stage_duration_seconds{stage}`: each stage of a query (rag/observe.py STAGES);
- `index_documents`, `index_chunks`, `index_segments`, `index_tombstones`, `index_bytes{where}`:
  read from the index at each scrape;
- `ingest_documents_total`, `ingest_chunks_total`, `ingest_seconds_total`: every ingest, whoever
  started it (HTTP, MCP, a feed poll);
- `feed_polls_total{outcome}` and `mcp_tool_calls_total{tool,outcome}`, `mcp_tool_duration_seconds{tool}`.

Several processes (the replicas of `rag serve --ray`): prometheus-client's multiprocess mode. With
PROMETHEUS_MULTIPROC_DIR set (`rag serve --ray` sets it for its replicas), each process writes its
counts to files there and any replica's `/metrics` adds up every process's files, so a scrape
through Ray's proxy gets the whole service whichever replica answers. The index series are read
from the index itself, which every replica shares.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

from fastapi import APIRouter, Depends, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag import observe

from .scopes import route_template
from .security import require_read

PATH = "/metrics"
# Request and stage latencies here run from ~1 ms (a word search) to seconds (a drafted answer).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOOLS = ("ask", "search", "get_document", "list_documents", "add_document", "delete_document")

REGISTRY = CollectorRegistry()
REQUESTS = Counter("rag_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=REGISTRY)
LATENCY = Histogram(
    "rag_http_request_duration_seconds", "Time to answer an HTTP request, body included", ["method", "route"],
    buckets=BUCKETS, registry=REGISTRY,
)
STAGE = Histogram("rag_stage_duration_seconds", "Time in each stage of a query", ["stage"], buckets=BUCKETS, registry=REGISTRY)
INGEST_DOCS = Counter("rag_ingest_documents", "Documents added or replaced", registry=REGISTRY)
INGEST_CHUNKS = Counter("rag_ingest_chunks", "Chunks embedded and committed", registry=REGISTRY)
INGEST_SECONDS = Counter("rag_ingest_seconds", "Seconds spent ingesting", registry=REGISTRY)
POLLS = Counter("rag_feed_polls", "Feed polls, by outcome", ["outcome"], registry=REGISTRY)
TOOL_CALLS = Counter("rag_mcp_tool_calls", "MCP tool calls, by tool and outcome", ["tool", "outcome"], registry=REGISTRY)
TOOL_LATENCY = Histogram(
    "rag_mcp_tool_duration_seconds", "Time to answer an MCP tool call", ["tool"], buckets=BUCKETS, registry=REGISTRY
)


class _Listener:
    """Stage timings, ingests and feed polls from the library (rag/observe.py) into the series."""

    def __init__(self) -> None:
        self._stages = {name: STAGE.labels(name).observe for name in observe.STAGES}

    def stage(self, name: str) -> observe.Timer:
        record = self._stages.get(name) or STAGE.labels(name).observe
        return observe.Timer(record)

    def ingested(self, documents: int, chunks: int, seconds: float) -> None:
        INGEST_DOCS.inc(documents)
        INGEST_CHUNKS.inc(chunks)
        INGEST_SECONDS.inc(seconds)

    def polled(self, outcome: str) -> None:
        POLLS.labels(outcome).inc()


LISTENER = _Listener()


def tool_called(tool: str, outcome: str, seconds: float) -> None:
    name = tool if tool in TOOLS else "unknown"  # a client's made-up names must not mint series
    TOOL_CALLS.labels(name, outcome).inc()
    TOOL_LATENCY.labels(name).observe(seconds)


class IndexCollector:
    """The index's size, read at each scrape (shared by every replica, so never added up)."""

    def __init__(self, request: Request) -> None:
        self.request = request

    def collect(self) -> Iterator[Metric]:
        holder = self.request.app.state.holder
        if not holder.ready:
            return
        service = holder.get()
        docs, chunks = service.index.store.counts()
        segments = service.index.segment_stats()
        yield GaugeMetricFamily("rag_index_documents", "Documents in the index", value=docs)
        yield GaugeMetricFamily("rag_index_chunks", "Chunks in the index", value=chunks)
        yield GaugeMetricFamily("rag_index_segments", "Live vector segments", value=len(segments))
        yield GaugeMetricFamily(
            "rag_index_tombstones", "Deleted vectors still held in segments", value=sum(s["tombstones"] for s in segments)
        )
        size = GaugeMetricFamily("rag_index_bytes", "Bytes of the vector segments", labels=["where"])
        size.add_metric(["disk"], sum(s["disk_bytes"] for s in segments))
        size.add_metric(["memory"], sum(s["memory_bytes"] for s in segments))
        yield size


def exposition(request: Request) -> bytes:
    """Every series, in the text format: this process's (or, in multiprocess mode, every
    process's) counters and histograms, then the index's gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        counts = CollectorRegistry()
        multiprocess.MultiProcessCollector(counts)
    else:
        counts = REGISTRY
    index = CollectorRegistry(auto_describe=False)
    index.register(IndexCollector(request))
    return generate_latest(counts) + generate_latest(index)


router = APIRouter()


# Not in the OpenAPI document: its body is Prometheus's text format, not JSON, for scrapers.
@router.get(PATH, dependencies=[Depends(require_read)], include_in_schema=False)
def metrics(request: Request) -> Response:
    return Response(exposition(request), media_type=CONTENT_TYPE_LATEST)


class RequestMetrics:
    """Pure ASGI middleware: counts and times every HTTP request by route template and status."""

    def __init__(self, app: ASGIApp, routes: list) -> None:  # type: ignore[type-arg]
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = route_template(scope, self.routes)
            REQUESTS.labels(scope["method"], route, str(status)).inc()
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - t0)


def install(app: FastAPI) -> None:
    """`/metrics`, the request middleware, and the library's stage, ingest and poll hooks;
    nothing with RAG_METRICS=false."""
    if not app.state.holder.settings.metrics:
        return
    app.include_router(router)
    app.add_middleware(RequestMetrics, routes=app.router.routes)
    observe.listen(LISTENER)
