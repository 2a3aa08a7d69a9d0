"""`/metrics`: a real Prometheus server (Debian's `prometheus`) scrapes a live `rag serve` on
loopback with its API key, and the series are read back through Prometheus's HTTP API. Under
`make test` (RAG_REQUIRE_PROMETHEUS=1) a missing Prometheus fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from live import KEY, RagServe, free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
QUESTIONS = ["What does Russia demand on NATO?", "Who is Trump's communications director?", "Izvestiya Grushko"]
AUTH = {"authorization": f"Bearer {KEY}"}
STAGES = {"embed", "vector_search", "word_search", "fuse", "answer"}


def require_prometheus() -> None:
    if Path(PROMETHEUS).is_file():
        return
    message = "Debian's prometheus is not installed (sudo apt-get install -y prometheus; `make test` does it)"
    if os.environ.get("RAG_REQUIRE_PROMETHEUS"):
        pytest.fail(message)
    pytest.skip(message)


class Prometheus:
    """A Prometheus server scraping `target` every second with the API key, its data in `folder`."""

    def __init__(self, folder: Path, target: str) -> None:
        self.folder = folder
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = folder / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: rag\n    metrics_path: /metrics\n"
            f"    authorization:\n      type: Bearer\n      credentials: {KEY}\n"
            f"    static_configs:\n      - targets: ['{target}']\n"
        )
        self.args = [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"]
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Prometheus":
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=(self.folder / "prometheus.log").open("w"))
        assert wait(lambda: self._ready(), 60), (self.folder / "prometheus.log").read_text()[-2000:]
        return self

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def query(self, promql: str) -> list[dict]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10).json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else None

    def __exit__(self, *_: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        self.proc.wait(30)


def wait(check, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.25)
    return False


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with RagServe(tmp_path_factory.mktemp("metrics"), RAG_API_KEYS=KEY, RAG_PROTECT_READS="true") as server:
        yield server


def test_metrics_are_protected_like_reads(served):
    refused = httpx.get(f"{served.url}/metrics")
    assert refused.status_code == 401 and refused.json()["error"] == httpx.post(f"{served.url}/query", json={}).json()["error"]
    ok = httpx.get(f"{served.url}/metrics", headers=AUTH)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    names = {f.name for f in text_string_to_metric_families(ok.text)}
    assert {"rag_http_requests", "rag_index_documents", "rag_stage_duration_seconds"} <= names


def test_prometheus_scrapes_the_series(served, tmp_path):
    require_prometheus()
    for q in QUESTIONS:
        assert httpx.post(f"{served.url}/query", json={"question": q}, headers=AUTH, timeout=60).status_code == 200
    assert httpx.get(f"{served.url}/documents/nope", headers=AUTH).status_code == 404
    doc = {"id": "metrics-doc", "text": "A new bridge over the Tay opened in Dundee on Monday, the council said."}
    added = httpx.post(f"{served.url}/documents", json=doc, headers=AUTH, timeout=60).json()
    with Prometheus(tmp_path, served.url.removeprefix("http://")) as prom:
        assert wait(lambda: prom.value('up{job="rag"}') == 1.0, 60), prom.query("up")
        queries = 'sum(rag_http_requests_total{route="/query",method="POST",status="200"})'
        assert wait(lambda: (prom.value(queries) or 0) >= len(QUESTIONS), 30)
        assert prom.value('rag_http_requests_total{route="/documents/{doc_id}",status="404"}') == 1.0
        unauthorised = prom.value('sum(rag_http_requests_total{route="/metrics",status="401"})') or 0
        assert unauthorised >= 1  # the refused scrape of the test above
        stages = {r["metric"]["stage"] for r in prom.query("rag_stage_duration_seconds_count > 0")}
        assert STAGES <= stages, stages
        p50 = prom.value('histogram_quantile(0.5, sum by (le) (rag_http_request_duration_seconds_bucket{route="/query"}))')
        assert p50 is not None and 0 < p50 < 30
        assert prom.value("rag_index_documents") == 6.0
        assert prom.value("rag_index_chunks") > 6 and prom.value("rag_index_segments") >= 1
        assert prom.value('rag_index_bytes{where="disk"}') > 0
        assert prom.value("rag_ingest_documents_total") >= 1  # counted from the start of serving: this one
        assert prom.value("rag_ingest_chunks_total") >= added["chunks"]
        assert prom.value("rag_ingest_seconds_total") > 0


def sample(text: str, name: str, **labels: str) -> float:
    """One sample's value from the text format (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def test_feed_polls_count_by_outcome(make_service):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from newsserver import STORM, NewsServer, Route, news_page, rss

    site = NewsServer()
    try:
        site.routes["/storm.html"] = Route(news_page("Storm floods the coast", STORM).encode())
        site.routes["/feed.xml"] = Route(rss([{"title": "Storm", "link": site.url("/storm.html")}]),
                                         content_type="application/rss+xml")
        site.routes["/broken.xml"] = Route(b"oops", status=500, validators=False)
        service = make_service(fetch_allow_private=True, fetch_timeout_s=2)
        with TestClient(create_app(service)) as c:
            before = c.get("/metrics").text
            watcher = service.watch([site.url("/feed.xml"), site.url("/broken.xml")])
            watcher.poll_once()
            watcher.poll_once()  # the feed again: 304, not modified
            after = c.get("/metrics").text
        for outcome, n in (("changed", 1), ("error", 2), ("not modified", 1)):
            delta = sample(after, "rag_feed_polls_total", outcome=outcome) - sample(before, "rag_feed_polls_total", outcome=outcome)
            assert delta == n, (outcome, delta)
        docs = sample(after, "rag_ingest_documents_total") - sample(before, "rag_ingest_documents_total")
        assert docs == 1 and sample(after, "rag_index_documents") == 1
    finally:
        site.close()
        service.stop_watching()
