"""OpenTelemetry traces, on when OTEL_EXPORTER_OTLP_ENDPOINT is set (the `otel` extra).

A span per request, with a child span per stage of a query (rag/observe.py: embed,
vector_search, word_search, fuse, rerank, answer). Each response carries its trace id in
`X-Trace-Id`, and each request's log line (logger `rag.access`, to stderr) names it, so a slow
answer seen by a client or in the log leads to its trace. The exporter is OTLP over HTTP and reads
the standard OTEL_* variables (endpoint, headers, OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER); a
caller's W3C `traceparent` makes the request's span a child of the caller's.

The request's span comes from one pure ASGI middleware rather than the FastAPI instrumentation,
which cost ~350 µs a request (a middleware per layer, dozens of attributes, metrics of its own)
against a 3% budget on a 14 ms query. Inside a request a stage only notes its name, parent and
times; its span is made from those once the response has been sent, so the SDK's span machinery
(tens of µs a span: sampler, context attach and detach, attributes) is off the answer's path, and
a request the sampler left out notes nothing at all. OpenTelemetry is imported only inside
`install`, which the app calls only when the variable is set (or a test hands it an exporter):
without it nothing is loaded and no request pays for it.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import nullcontext
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag import observe

from .scopes import route_template

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"
TRACE_HEADER = b"x-trace-id"
SERVICE_NAME = "rag-news"
# Probes and scrapes: a span each would bury the requests worth reading.
UNTRACED = frozenset({"/health", "/metrics"})

access_log = logging.getLogger("rag.access")


def enabled() -> bool:
    return bool(os.environ.get(ENDPOINT_VARIABLE, "").strip())


# A traced request's stages as (name, parent context, start ns, end ns), spans to make once it is
# answered; UNSAMPLED where the sampler left the request out; None outside any request.
_stages: ContextVar[list[tuple[str, Any, int, int]] | None] = ContextVar("rag_trace_stages", default=None)
UNSAMPLED: list[tuple[str, Any, int, int]] = []
_NOTHING = nullcontext()


class _Noted:
    """One stage of a traced request: its parent (the span current when it starts) and its times."""

    __slots__ = ("name", "todo", "parent", "start")

    def __init__(self, name: str, todo: list[tuple[str, Any, int, int]], parent: Any) -> None:
        self.name, self.todo, self.parent = name, todo, parent

    def __enter__(self) -> "_Noted":
        self.start = time.time_ns()
        return self

    def __exit__(self, *exc: object) -> None:
        self.todo.append((self.name, self.parent, self.start, time.time_ns()))


class _Stages:
    """Each stage of a query as a child span of whatever span is current when it starts (the
    request's, or one a library opened under it): noted during a request, made after it."""

    def __init__(self, tracer: Any) -> None:
        from opentelemetry import context

        self.tracer, self.current = tracer, context.get_current

    def stage(self, name: str) -> Any:
        todo = _stages.get()
        if todo is None:  # outside a request (a background ingest's standing questions): a span now
            return self.tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False)
        if todo is UNSAMPLED:
            return _NOTHING
        return _Noted(name, todo, self.current())

    def make(self, todo: list[tuple[str, Any, int, int]]) -> None:
        """The spans of a request's noted stages."""
        for name, parent, start, end in todo:
            self.tracer.start_span(name, context=parent, start_time=start).end(end_time=end)

    def ingested(self, documents: int, chunks: int, seconds: float) -> None:
        pass

    def polled(self, outcome: str) -> None:
        pass


class RequestSpans:
    """Pure ASGI middleware: a server span per HTTP request, current while the app runs, named by
    method and route template; its trace id in the response headers and in one log line."""

    def __init__(self, app: ASGIApp, routes: list, stages: _Stages) -> None:  # type: ignore[type-arg]
        from opentelemetry import context, propagate, trace
        from opentelemetry.trace import SpanKind, Status, StatusCode

        self.app, self.tracer, self.routes, self.stages = app, stages.tracer, routes, stages
        self.context, self.propagate, self.trace = context, propagate, trace
        self.server, self.error = SpanKind.SERVER, Status(StatusCode.ERROR)
        self.carried = frozenset(f.encode() for f in propagate.get_global_textmap().fields)

    def _parent(self, scope: Scope) -> Any:
        """The caller's trace context from its propagation headers (`traceparent`), if it sent any."""
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"] if k in self.carried}
        return self.propagate.extract(carrier) if carrier else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        span = self.tracer.start_span(method, context=self._parent(scope), kind=self.server,
                                      attributes={"http.request.method": method, "url.path": scope["path"]})
        token = self.context.attach(self.trace.set_span_in_context(span))
        todo: list[tuple[str, Any, int, int]] = [] if span.is_recording() else UNSAMPLED
        noting = _stages.set(todo)
        context = span.get_span_context()
        trace_id = format(context.trace_id, "032x").encode() if context.is_valid else b""
        t0 = time.perf_counter()
        status = 500

        async def with_header(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if trace_id:
                    message = {**message, "headers": [*message.get("headers", []), (TRACE_HEADER, trace_id)]}
            await send(message)

        try:
            await self.app(scope, receive, with_header)
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            ended, took_ms = time.time_ns(), (time.perf_counter() - t0) * 1000
            _stages.reset(noting)
            self.stages.make(todo)
            route = route_template(scope, self.routes)
            span.update_name(f"{method} {route}")
            span.set_attributes({"http.route": route, "http.status_code": status, "http.response.status_code": status})
            if status >= 500:
                span.set_status(self.error)
            span.end(end_time=ended)
            self.context.detach(token)
            access_log.info("%s %s %d %.1f ms trace_id=%s", method, scope["path"], status, took_ms,
                            trace_id.decode() or "-")


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
    made = provider(exporter)
    if exporter is None:  # the process's provider too, so spans of other libraries (the MCP SDK's) export as well
        from opentelemetry import trace

        trace.set_tracer_provider(made)
    app.state.trace_stages = _Stages(made.get_tracer("rag"))
    app.add_middleware(RequestSpans, routes=app.router.routes, stages=app.state.trace_stages)
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
