"""OpenTelemetry traces, on when OTEL_EXPORTER_OTLP_ENDPOINT is set (the `otel` extra).

A span per request (the FastAPI instrumentation), with a child span per stage of a query
(rag/observe.py: embed, vector_search, word_search, fuse, rerank, answer). Each response carries
its trace id in `X-Trace-Id`, and each request's log line (logger `rag.access`, to stderr) names
it, so a slow answer seen by a client or in the log leads to its trace. The exporter is OTLP over
HTTP and reads the standard OTEL_* variables (endpoint, headers, OTEL_SERVICE_NAME).

OpenTelemetry is imported only inside `install`, which the app calls only when the variable is
set (or a test hands it an exporter): without it nothing is loaded and no request pays for it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag import observe

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACE_HEADER = "x-trace-id"
SERVICE_NAME = "rag-news"

access_log = logging.getLogger("rag.access")


def enabled() -> bool:
    return bool(os.environ.get(ENDPOINT_VARIABLE, "").strip())


class _Stages:
    """Each stage of a query as a child span of whatever span is current (the request's)."""

    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    def stage(self, name: str) -> Any:
        return self.tracer.start_as_current_span(name)

    def ingested(self, documents: int, chunks: int, seconds: float) -> None:
        pass

    def polled(self, outcome: str) -> None:
        pass


class TraceHeader:
    """Pure ASGI middleware inside the request's span: its trace id in the response headers and
    in one log line per request."""

    def __init__(self, app: ASGIApp) -> None:
        from opentelemetry import trace

        self.app = app
        self.trace = trace

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = self.trace.get_current_span().get_span_context()
        trace_id = self.trace.format_trace_id(context.trace_id) if context.is_valid else ""
        t0 = time.perf_counter()
        status = 500

        async def with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if trace_id:
                    message = {**message, "headers": [*message.get("headers", []), (TRACE_HEADER.encode(), trace_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, with_header)
        finally:
            access_log.info(
                "%s %s %d %.1f ms trace_id=%s", scope["method"], scope["path"], status,
                (time.perf_counter() - t0) * 1000, trace_id or "-",
            )


def provider(exporter: "SpanExporter | None" = None) -> "TracerProvider":
    """A tracer provider exporting to `exporter` as each span ends (tests: the in-memory
    exporter), else in batches over OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    made = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", SERVICE_NAME)}))
    if exporter is not None:
        made.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        made.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return made


def install(app: FastAPI, exporter: "SpanExporter | None" = None) -> "TracerProvider":
    """Trace every request of `app` and every stage of the library's queries."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    made = provider(exporter)
    if exporter is None:  # the process's provider too, so spans of other libraries (the MCP SDK's) export as well
        from opentelemetry import trace

        trace.set_tracer_provider(made)
    app.add_middleware(TraceHeader)
    # No span per ASGI message (`receive`, `send`): the request's span already times them, and a
    # streamed answer would add one span per event.
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=made, excluded_urls="/health,/metrics", exclude_spans=["receive", "send"]
    )
    app.state.trace_stages = _Stages(made.get_tracer("rag"))
    observe.listen(app.state.trace_stages)
    if not access_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    return made


def install_if_enabled(app: FastAPI) -> None:
    """`install` when OTEL_EXPORTER_OTLP_ENDPOINT is set; otherwise nothing, not even an import."""
    if enabled():
        install(app)
