"""OpenTelemetry traces with the SDK's in-memory exporter: a span per request with a child span
per stage of the query, the trace id in the response header and in the request's log line; and
without OTEL_EXPORTER_OTLP_ENDPOINT, nothing of the OpenTelemetry SDK loaded at all."""

from __future__ import annotations

import logging
import subprocess
import sys

from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from api import tracing
from api.app import create_app
from live import ROOT, rag_env
from rag import observe

STAGES = {"embed", "vector_search", "word_search", "fuse", "answer"}


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_a_span_per_request_with_a_child_per_stage(seeds_service):
    exporter = InMemorySpanExporter()
    app = create_app(seeds_service)
    provider = tracing.install(app, exporter)
    lines = Lines()
    tracing.access_log.addHandler(lines)
    try:
        with TestClient(app) as c:
            r = c.post("/query", json={"question": "What does Russia demand on NATO?"})
            missing = c.get("/documents/nope")
    finally:
        tracing.access_log.removeHandler(lines)
        observe.unlisten(app.state.trace_stages)
        provider.shutdown()
    assert r.status_code == 200 and missing.status_code == 404
    trace_id = r.headers["x-trace-id"]
    assert len(trace_id) == 32 and trace_id != missing.headers["x-trace-id"]
    spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    by_id = {s.context.span_id: s for s in spans}
    (request,) = [s for s in spans if s.parent is None]
    assert request.name == "POST /query" and request.attributes["http.status_code"] == 200
    stages = {s.name: s for s in spans if s.name in STAGES}
    assert set(stages) == STAGES
    for span in stages.values():  # each stage hangs under the request's span
        parent = span
        while parent.parent is not None:
            parent = by_id[parent.parent.span_id]
        assert parent is request
        assert request.start_time <= span.start_time <= span.end_time <= request.end_time
    assert any("POST /query 200" in line and f"trace_id={trace_id}" in line for line in lines.lines), lines.lines


def test_a_request_the_sampler_leaves_out_records_nothing(seeds_service, monkeypatch):
    """OTEL_TRACES_SAMPLER=always_off: the request still gets a trace id (its log line and header
    name it) but neither it nor its stages become spans."""
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    exporter = InMemorySpanExporter()
    app = create_app(seeds_service)
    provider = tracing.install(app, exporter)
    try:
        with TestClient(app) as c:
            r = c.post("/query", json={"question": "What does Russia demand on NATO?"})
    finally:
        observe.unlisten(app.state.trace_stages)
        provider.shutdown()
    assert r.status_code == 200 and len(r.headers["x-trace-id"]) == 32
    assert exporter.get_finished_spans() == ()


def test_a_stage_hangs_under_the_span_current_when_it_starts():
    """Inside a request a stage is noted and made later; its parent is whatever span was current
    when it began (here one a library opened under the request). Outside any request, a span now."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    stages = tracing._Stages(tracer)
    todo: list = []
    noting = tracing._stages.set(todo)
    try:
        with tracer.start_as_current_span("library"), stages.stage("embed"):
            pass
    finally:
        tracing._stages.reset(noting)
    assert [s.name for s in exporter.get_finished_spans()] == ["library"]  # the stage only noted
    stages.make(todo)
    library, embed = exporter.get_finished_spans()
    assert embed.name == "embed" and embed.parent.span_id == library.context.span_id
    assert library.start_time <= embed.start_time <= embed.end_time <= library.end_time
    with stages.stage("word_search"):
        pass
    alone = exporter.get_finished_spans()[-1]
    assert alone.name == "word_search" and alone.parent is None
    provider.shutdown()


MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json",
               "mcp-protocol-version": "2025-06-18"}


def test_an_mcp_tool_calls_stages_hang_under_its_request(seeds_service):
    exporter = InMemorySpanExporter()
    app = create_app(seeds_service)
    provider = tracing.install(app, exporter)
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
            "params": {"name": "ask", "arguments": {"question": "What does Russia demand on NATO?"}}}
    try:
        with TestClient(app) as c:
            r = c.post("/mcp", headers=MCP_HEADERS, json=call)
    finally:
        observe.unlisten(app.state.trace_stages)
        provider.shutdown()
    assert r.status_code == 200 and not r.json()["result"]["isError"], r.text
    trace_id = r.headers["x-trace-id"]
    spans = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    (request,) = [s for s in spans if s.parent is None]
    assert request.name == "POST /mcp"
    assert STAGES <= {s.name for s in spans}


NO_TRACING = """
import sys
from fastapi.testclient import TestClient
from api.app import create_app
from rag import observe
with TestClient(create_app()) as c:
    r = c.post("/query", json={"question": "What does Russia demand on NATO?"})
    assert r.status_code == 200 and "x-trace-id" not in r.headers, r.text
loaded = sorted(m for m in sys.modules if m.startswith(("opentelemetry.sdk", "opentelemetry.instrumentation", "opentelemetry.exporter")))
assert not loaded, loaded
assert [type(x).__name__ for x in observe._listeners] == ["_Listener"], observe._listeners  # metrics only
print("ok")
"""


def test_without_the_endpoint_nothing_is_loaded(tmp_path):
    env = {k: v for k, v in rag_env(tmp_path).items() if not k.startswith("OTEL_")}
    out = subprocess.run([sys.executable, "-c", NO_TRACING], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-3000:]


def test_a_callers_traceparent_makes_the_request_its_child(seeds_service):
    exporter = InMemorySpanExporter()
    app = create_app(seeds_service)
    provider = tracing.install(app, exporter)
    caller_trace, caller_span = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    try:
        with TestClient(app) as c:
            r = c.get("/documents/nope", headers={"traceparent": f"00-{caller_trace}-{caller_span}-01"})
            health = c.get("/health")
    finally:
        observe.unlisten(app.state.trace_stages)
        provider.shutdown()
    assert r.status_code == 404 and r.headers["x-trace-id"] == caller_trace
    (request,) = [s for s in exporter.get_finished_spans() if format(s.context.trace_id, "032x") == caller_trace]
    assert request.name == "GET /documents/{doc_id}" and format(request.parent.span_id, "016x") == caller_span
    assert request.attributes["http.status_code"] == 404 and request.attributes["http.route"] == "/documents/{doc_id}"
    assert health.status_code == 200 and "x-trace-id" not in health.headers  # probes are not traced


ONE_REQUEST_SPAN = """
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from api.app import create_app
app = create_app()
memory = InMemorySpanExporter()
trace.get_tracer_provider().add_span_processor(SimpleSpanProcessor(memory))
with TestClient(app) as c:
    r = c.post("/query", json={"question": "What does Russia demand on NATO?"})
assert r.status_code == 200, r.text
spans = [s for s in memory.get_finished_spans() if format(s.context.trace_id, "032x") == r.headers["x-trace-id"]]
print(sorted(s.name for s in spans))
"""


def test_with_the_endpoint_set_each_request_has_one_span_of_its_own(tmp_path):
    """As `rag serve` runs it: the process's provider is global, which would also switch on FastAPI's
    own request and operation spans; the request must still be one span with its stages under it."""
    env = {**rag_env(tmp_path), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}  # never reached: no span is flushed
    out = subprocess.run([sys.executable, "-c", ONE_REQUEST_SPAN], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    names = eval(out.stdout.strip().splitlines()[-1])  # noqa: S307 - the list the child printed
    assert names.count("POST /query") == 1 and STAGES <= set(names), names
    assert not [n for n in names if n.startswith("fastapi.")], names
