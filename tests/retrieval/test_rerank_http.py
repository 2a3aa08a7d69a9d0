"""The `/rerank` client against a real HTTP server on loopback.

The server is a stand-in: no cross-encoder weights ship offline here, so it scores each document by
the packaged bi-encoder's best cosine of the query with one of the document's sentences (a close
reading, as a cross-encoder's is; a whole chunk's vector blurs the one sentence that answers). It speaks the API's two response
shapes (`{"results": [{index, relevance_score}]}` of Jina, Cohere, vLLM and llama.cpp; TEI's bare
`[{index, score}]`) and misbehaves on request: slow, garbage, too few rows, refusing the key.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag.config import RerankerKind, Settings
from rag.retrieval.rerank import RerankStatus, load_reranker
from rag.retrieval.rerank_http import HttpReranker
from rag.retrieval.search import Retriever, rrf
from rag.service import Service
from rag.text import sentences

from eval.serving import LOOPBACK, free_port

GRUSHKO = "Which Russian newspaper interviewed Grushko?"
SLOW_S = 2.0


def stand_in_scores(embedder, query: str, docs: list[str]) -> list[float]:
    """Per document, the best cosine of the query with one of its sentences."""
    best = []
    for doc in docs:
        vecs = embedder.encode([query] + ([x.text for x in sentences(doc)] or [doc]))
        best.append(float(np.max(vecs[1:] @ vecs[0])))
    return best


def _handler(embedder, seen: list[dict]):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output clean
            pass

        def do_POST(self) -> None:
            mode = self.path.strip("/").split("/")[0]
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append(body)
            if mode == "slow":  # answers after the client gave up, and without running the model
                time.sleep(SLOW_S)
                return self._send(200, b'{"results": []}')
            if mode == "locked" and self.headers.get("Authorization") != "Bearer right":
                return self._send(401, b'{"error": "invalid api key"}')
            if mode == "garbage":
                return self._send(200, b"<html>upstream error</html>")
            docs = body["texts"] if mode == "tei" else body["documents"]
            scores = stand_in_scores(embedder, body["query"], docs)
            order = sorted(range(len(docs)), key=lambda i: -scores[i])[: body.get("top_n") or len(docs)]
            if mode == "tei":
                out: object = [{"index": i, "score": scores[i]} for i in order]
            elif mode == "few":
                out = {"results": [{"index": len(docs) + 3, "relevance_score": 1.0}]}
            else:
                out = {"model": "stand-in", "results": [{"index": i, "relevance_score": scores[i]} for i in order]}
            self._send(200, json.dumps(out).encode())

        def _send(self, code: int, payload: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


@pytest.fixture(scope="module")
def rerank_server(embedder):
    """Base URL of the stand-in; the first path segment picks its behaviour. And the bodies it got."""
    seen: list[dict] = []
    server = ThreadingHTTPServer((LOOPBACK, free_port()), _handler(embedder, seen))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://{LOOPBACK}:{server.server_port}", seen
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def candidates(seeds_service, embedder):
    index = seeds_service.index
    ranked = Retriever(index, embedder)._candidates(
        GRUSHKO, embedder.encode([GRUSHKO])[0], 10, seeds_service.settings.retrieval_mode, None
    )[:10]
    docs = index.store.documents_by_id(c.doc_id for c, _ in ranked)
    return ranked, docs


@pytest.mark.parametrize("shape", ["results", "tei"])
def test_server_scores_put_the_answering_chunk_first(rerank_server, candidates, embedder, shape):
    url, _ = rerank_server
    ranked, docs = candidates
    chunks = [c for c, _ in ranked]
    scores = HttpReranker(f"{url}/{shape}").scores(GRUSHKO, chunks, [None] * len(chunks))
    assert np.allclose(scores, stand_in_scores(embedder, GRUSHKO, [c.text for c in chunks]), atol=1e-5)
    assert "Izvestiya" in chunks[int(np.argmax(scores))].text


def test_reranked_order_is_rrf_of_first_stage_and_server(rerank_server, candidates, seeds_service, embedder):
    url, seen = rerank_server
    ranked, docs = candidates
    reranker = HttpReranker(f"{url}/results", model="bge-reranker")
    titles = [docs[c.doc_id].title for c, _ in ranked]
    scores = reranker.scores(GRUSHKO, [c for c, _ in ranked], titles)
    assert seen[-1]["model"] == "bge-reranker" and seen[-1]["query"] == GRUSHKO
    by_score = sorted(range(len(ranked)), key=lambda i: -scores[i])
    assert by_score != list(range(len(ranked)))  # the server's order differs: the test can fail
    want = [ranked[i][0].vid for i, _ in rrf([list(range(len(ranked))), by_score])]
    status = RerankStatus()
    r = Retriever(seeds_service.index, embedder, reranker=reranker, rerank_candidates=10)
    assert [c.vid for c, _ in r._rerank(GRUSHKO, ranked, docs, status)] == want
    assert status.used and status.error is None


def test_top_n_scores_only_the_servers_best(rerank_server, candidates):
    url, seen = rerank_server
    chunks = [c for c, _ in candidates[0]]
    scores = HttpReranker(f"{url}/results", top_n=3).scores(GRUSHKO, chunks, [None] * len(chunks))
    assert seen[-1]["top_n"] == 3
    assert sum(s != float("-inf") for s in scores) == 3


@pytest.mark.parametrize(
    "path, timeout_s, says",
    [
        ("garbage", 5.0, "something other than /rerank results"),
        ("few", 5.0, "something other than /rerank results"),
        ("slow", 0.5, "did not answer within RAG_RERANK_TIMEOUT_S"),
        ("locked", 5.0, "RAG_RERANK_API_KEY"),
        (None, 5.0, "cannot reach the rerank server"),
    ],
)
def test_a_failing_server_leaves_the_first_stage_ranking_flagged(
    rerank_server, seeds_service, embedder, path, timeout_s, says
):
    url, _ = rerank_server
    base = f"http://{LOOPBACK}:{free_port()}" if path is None else f"{url}/{path}"  # None: nothing listens
    plain = Retriever(seeds_service.index, embedder, max_per_doc=1)
    reranked = Retriever(seeds_service.index, embedder, 1, HttpReranker(base, timeout_s=timeout_s))
    status = RerankStatus()
    got = reranked.search(GRUSHKO, 5, rerank_status=status)
    assert [h.chunk.chunk_id for h in got] == [h.chunk.chunk_id for h in plain.search(GRUSHKO, 5)]
    assert not status.used and says in (status.error or "")


def test_the_key_is_sent(rerank_server, candidates):
    url, _ = rerank_server
    chunks = [c for c, _ in candidates[0]]
    assert len(HttpReranker(f"{url}/locked", api_key="right").scores(GRUSHKO, chunks, [None] * len(chunks))) == 10


def test_choice_from_settings(embedder):
    r = load_reranker(Settings(reranker=RerankerKind.http, rerank_base_url="http://h:1/v1", rerank_timeout_s=2), embedder)
    assert isinstance(r, HttpReranker) and r.url == "http://h:1/v1/rerank"


@pytest.mark.parametrize("path, used", [("results", True), ("garbage", False), ("slow", False)])
def test_query_over_http_reports_the_rerank_stage(rerank_server, seeds_service, embedder, path, used):
    from api.app import create_app

    url, _ = rerank_server
    settings = Settings(
        index_dir=seeds_service.settings.index_dir, seeds_dir=seeds_service.settings.seeds_dir,
        reranker=RerankerKind.http, rerank_base_url=f"{url}/{path}", rerank_timeout_s=0.5 if path == "slow" else 30,
    )
    with TestClient(create_app(Service(settings, embedder=embedder))) as client:
        resp = client.post("/query", json={"question": GRUSHKO, "answer": False})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["rerank"]["used"] is used and (body["rerank"]["error"] is None) is used
    assert body["passages"] and "Izvestiya" in " ".join(p["text"] for p in body["passages"])
    plain = seeds_service.ask(seeds_service_query(GRUSHKO))
    assert plain.rerank is None
    if not used:
        assert [p["chunk_id"] for p in body["passages"]] == [p.chunk_id for p in plain.passages]


def seeds_service_query(question: str):
    from rag.schema import Query

    return Query(question=question, answer=False)
