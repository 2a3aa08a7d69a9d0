"""Reranker over the `/rerank` API that text-embeddings-inference, vLLM, llama.cpp's server
(`--reranking`), Jina and Cohere share: a query and documents in, one relevance score each out.

A server that is down, slower than the timeout or answering nonsense raises `RerankUnavailable`, and
the retriever keeps the first-stage ranking, flagged in the response.
"""

from __future__ import annotations

import math
from typing import Any

import httpx

from ..config import Settings
from ..storage.store import ChunkRow
from .rerank import RerankUnavailable

# Candidates a server left out (top_n) rank after every scored one, in first-stage order.
UNSCORED = -math.inf


def rerank_url(base_url: str) -> str:
    """`http://h:p` -> `.../rerank`; `.../v1` -> `.../v1/rerank`; a URL ending in /rerank as it is."""
    base = base_url.rstrip("/")
    return base if base.endswith("/rerank") else f"{base}/rerank"


class HttpReranker:
    name = "http"

    def __init__(
        self, base_url: str, model: str = "default", api_key: str | None = None, timeout_s: float = 5.0,
        top_n: int | None = None,
    ) -> None:
        self.url = rerank_url(base_url)
        self.model = model
        self.top_n = top_n
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), trust_env=False)

    @classmethod
    def from_settings(cls, s: Settings) -> "HttpReranker":
        key = s.rerank_api_key.get_secret_value() if s.rerank_api_key else None
        return cls(s.rerank_base_url, s.rerank_model, key, s.rerank_timeout_s, s.rerank_top_n)

    def scores(self, question: str, chunks: list[ChunkRow], titles: list[str | None]) -> list[float]:
        docs = [f"{t}\n{c.text}" if t else c.text for c, t in zip(chunks, titles)]
        if not docs:
            return []
        # `documents` for Jina, Cohere, vLLM and llama.cpp; `texts` for text-embeddings-inference.
        body: dict[str, Any] = {"model": self.model, "query": question, "documents": docs, "texts": docs,
                                "return_documents": False}
        if self.top_n is not None:
            body["top_n"] = min(self.top_n, len(docs))
        try:
            resp = self._client.post(self.url, json=body)
        except httpx.TimeoutException:
            raise RerankUnavailable(f"the rerank server at {self.url} did not answer within RAG_RERANK_TIMEOUT_S") from None
        except httpx.HTTPError as exc:
            raise RerankUnavailable(f"cannot reach the rerank server at {self.url} ({type(exc).__name__})") from None
        if resp.status_code in (401, 403):
            raise RerankUnavailable(f"the rerank server at {self.url} refused the request ({resp.status_code}): check RAG_RERANK_API_KEY")
        if resp.status_code >= 400:
            raise RerankUnavailable(f"the rerank server at {self.url} answered {resp.status_code}")
        return _parse(resp, len(docs), self.url)


def _parse(resp: httpx.Response, n: int, url: str) -> list[float]:
    """Scores by document index from `{"results": [{index, relevance_score}]}` or TEI's bare
    `[{index, score}]`; RerankUnavailable for anything else."""
    scores = [UNSCORED] * n
    try:
        payload = resp.json()
        rows = payload["results"] if isinstance(payload, dict) else payload
        if not isinstance(rows, list) or not rows:
            raise ValueError("no results")
        for row in rows:
            i = row["index"]
            score = row["relevance_score"] if "relevance_score" in row else row["score"]
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n or isinstance(score, bool):
                raise ValueError("bad row")
            value = float(score)
            if not math.isfinite(value):
                raise ValueError("bad score")
            scores[i] = value
    except (ValueError, KeyError, TypeError):
        raise RerankUnavailable(f"the rerank server at {url} answered something other than /rerank results") from None
    return scores
