"""`rag serve --ray ADDRESS --replicas 2` on a real two-node Ray cluster, run as a user runs it:
the same API, writes through the one writer replica seen by the query replicas, a query replica
SIGKILLed under a bounded loopback load costing only the requests in flight, and SIGTERM taking
the applications down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from eval.ray_cluster import RAY_ENV, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = 4
QUESTION = {"question": "What does Russia demand on NATO?"}


def replicas(kind: str) -> list[int]:
    import psutil

    out = []
    for p in psutil.process_iter(["cmdline"]):
        cl = p.info["cmdline"] or []
        if cl and cl[0].startswith(f"ray::ServeReplica:{kind}"):
            out.append(p.pid)
    return out


def health(url: str) -> dict | None:
    try:
        r = httpx.get(f"{url}/health", timeout=10)
        return r.json() if r.status_code == 200 else None
    except httpx.HTTPError:
        return None


async def mcp_ask(url: str):  # type: ignore[no-untyped-def]
    from mcp import Client

    async with Client(url, cache=None, read_timeout_seconds=60) as client:
        return await client.call_tool("ask", {"question": QUESTION["question"], "k": 2})


def queries_counted(url: str) -> float:
    """POST /query answered 200, as /metrics says (summed over the series of every process)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    return sum(
        s.value for f in text_string_to_metric_families(text) for s in f.samples
        if s.name == "rag_http_requests_total" and s.labels.get("route") == "/query" and s.labels.get("status") == "200"
    )


def test_serve_on_ray(ray_cluster, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, **RAY_ENV, "RAG_INDEX_DIR": str(tmp_path / "index"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag.cli", "serve", "--ray", ray_cluster.address, "--replicas", "2", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        assert wait_for(lambda: health(url) is not None and len(replicas("rag:Reader")) == 2, timeout=240), "not serving"
        assert health(url)["documents"] == 5  # the seeds, indexed by `rag serve` before deploying

        # the same API and JSON as `rag serve`; a write goes to the writer and every reader sees it
        answer = httpx.post(f"{url}/query", json=QUESTION, timeout=60)
        assert answer.status_code == 200 and answer.json()["passages"], answer.text
        doc = {"id": "zebras", "title": "Zebra census", "text": "Rangers in Kenya counted 4,000 zebras on Monday."}
        added = httpx.post(f"{url}/documents", json=doc, timeout=60)
        assert added.status_code == 200 and added.json()["added"] == ["zebras"], added.text
        assert all(health(url)["documents"] == 6 for _ in range(6))
        bad = httpx.post(f"{url}/query", json={"question": ""}, timeout=30)
        assert bad.status_code == 422 and "detail" in bad.json()
        mcp_answer = asyncio.run(mcp_ask(f"{url}/mcp"))  # /mcp on the query replicas: stateless
        assert not mcp_answer.is_error and mcp_answer.structured_content["passages"], mcp_answer

        outcomes: list[tuple[float, int]] = []  # (time, HTTP status or 0 for a connection error)
        stop = threading.Event()

        def client() -> None:
            with httpx.Client(timeout=60) as c:
                while not stop.is_set():
                    try:
                        status = c.post(f"{url}/query", json=QUESTION).status_code
                    except httpx.HTTPError:
                        status = 0
                    outcomes.append((time.monotonic(), status))

        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        time.sleep(5)
        before = replicas("rag:Reader")
        victim = before[0]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)
        back = wait_for(lambda: len(set(replicas("rag:Reader")) - {victim}) == 2, timeout=90)
        time.sleep(5)
        stop.set()
        for t in threads:
            t.join(timeout=90)
        assert back, "Ray did not bring the killed replica back"
        errors = [(t - killed_at, s) for t, s in outcomes if s != 200]
        late = [(t, s) for t, s in outcomes if t > killed_at + 3]
        assert len(errors) <= CLIENTS, errors  # at most the one request each client had in flight
        assert all(-0.1 <= dt <= 3 for dt, _ in errors), errors
        assert late and all(s == 200 for _, s in late)
        # every replica's counts, the killed one's too, whichever replica answers the scrape
        answered = 1 + sum(1 for _, s in outcomes if s == 200)
        scrapes = [queries_counted(url) for _ in range(6)]
        assert len(set(scrapes)) == 1 and scrapes[0] >= answered, (scrapes, answered)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=90)
        except subprocess.TimeoutExpired:
            proc.kill()
    assert proc.returncode == 0
    assert wait_for(lambda: not replicas("rag:Reader") and not replicas("rag-writer:Writer"), timeout=60)
