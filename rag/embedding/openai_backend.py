"""The OpenAI-compatible backend: vectors from any server's `/v1/embeddings` (text-embeddings-inference,
vLLM, llama.cpp's server, Ollama, a hosted API), normalised here since servers differ on that.

The endpoint is asked once on construction, so a wrong URL, key, model or dimension is one sentence at
start rather than a failure half-way through an ingest.
"""

from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np

from .base import EmbeddingError, ModelIdentity

if TYPE_CHECKING:
    from tokenizers import Tokenizer

BACKEND = "openai-api"
# English prose averages ~4 characters a token in WordPiece and BPE vocabularies; counting one token
# per 3 characters over-counts such text, so chunks sized by the estimate stay inside the model's
# window when no tokenizer is named (digits, names and non-Latin scripts run denser and are the risk).
CHARS_PER_TOKEN = 3
# Waits between attempts double from this (0.5 s, 1 s, 2 s ...).
BACKOFF_S = 0.5
PROBE_TEXT = "dimension probe"
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


def embeddings_url(base_url: str) -> str:
    """`http://h:p`, `http://h:p/v1` or the full endpoint -> `.../v1/embeddings`."""
    base = base_url.rstrip("/")
    if base.endswith("/embeddings"):
        return base
    return f"{base}/embeddings" if base.endswith("/v1") else f"{base}/v1/embeddings"


class OpenAIEmbedder:
    """Sentence embeddings from an OpenAI-compatible server, requested in batches, some at once."""

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout_s: float = 60.0, retries: int = 2,
        concurrency: int = 2, tokenizer: Path | None = None, max_tokens: int = 512, dim: int | None = None,
    ) -> None:
        self.url = embeddings_url(base_url)
        self.model = model
        self.retries = retries
        self.concurrency = concurrency
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(headers=headers, timeout=httpx.Timeout(timeout_s), trust_env=False)
        self._tokenizer = _load_tokenizer(tokenizer) if tokenizer is not None else None
        found = self._request([PROBE_TEXT]).shape[1]
        if dim is not None and found != dim:
            raise EmbeddingError(
                f"the embedding server at {self.url} returns {found}-dimensional vectors for model {model!r}, "
                f"but RAG_EMBED_DIM is {dim}: check RAG_EMBED_MODEL or RAG_EMBED_DIM"
            )
        # The weights lie on the server: its model name stands for them in the index's manifest.
        self.identity = ModelIdentity(
            name=model, path=self.url, weights_sha256=f"endpoint:{model}", dim=found, max_tokens=max_tokens,
            backend=BACKEND,
        )

    @classmethod
    def from_settings(cls, s: Any) -> "OpenAIEmbedder":
        key = s.embed_api_key.get_secret_value() if s.embed_api_key else None
        return cls(
            s.embed_base_url, s.embed_model, key, s.embed_timeout_s, s.embed_retries, s.embed_concurrency,
            s.embed_tokenizer, s.embed_max_tokens, s.embed_dim,
        )

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One normalised float32 row per text, in order."""
        if not texts:
            return np.zeros((0, self.identity.dim), dtype=np.float32)
        batches = [texts[i : i + batch_size] for i in range(0, len(texts), batch_size)]
        if len(batches) == 1 or self.concurrency == 1:
            parts = [self._request(b) for b in batches]
        else:
            with ThreadPoolExecutor(min(self.concurrency, len(batches))) as pool:
                parts = list(pool.map(self._request, batches))
        out = np.vstack(parts)
        if out.shape[1] != self.identity.dim:
            raise EmbeddingError(
                f"the embedding server at {self.url} now returns {out.shape[1]}-dimensional vectors, "
                f"not the {self.identity.dim} it returned at start: was its model changed?"
            )
        return out

    def count_tokens(self, text: str) -> int:
        """The named tokenizer's count (special tokens left out), else the conservative estimate."""
        if self._tokenizer is not None:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def close(self) -> None:
        self._client.close()

    def _request(self, texts: list[str]) -> np.ndarray:
        """POST one batch, retrying what may pass (connection, timeout, 429, 5xx) with backoff."""
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                resp = self._client.post(self.url, json=body)
            except httpx.TimeoutException:
                if last:
                    raise EmbeddingError(
                        f"the embedding server at {self.url} did not answer within the timeout "
                        f"(RAG_EMBED_TIMEOUT_S) after {self.retries + 1} attempts"
                    ) from None
            except httpx.HTTPError as exc:
                if last:
                    raise EmbeddingError(
                        f"cannot reach the embedding server at {self.url} ({type(exc).__name__}): "
                        "is it running, and is RAG_EMBED_BASE_URL right?"
                    ) from None
            else:
                if resp.status_code not in RETRY_STATUS or last:
                    return _vectors(resp, len(texts), self.url, self.model)
            time.sleep(BACKOFF_S * 2**attempt)
        raise AssertionError("unreachable")  # the last attempt returns or raises


def _vectors(resp: httpx.Response, n: int, url: str, model: str) -> np.ndarray:
    """The response's vectors, checked and normalised, or an EmbeddingError saying what is wrong."""
    if resp.status_code in (401, 403):
        raise EmbeddingError(
            f"the embedding server at {url} refused the request ({resp.status_code}): check RAG_EMBED_API_KEY"
        )
    if resp.status_code == 404:
        raise EmbeddingError(
            f"no embeddings API at {url} (404) or no model {model!r} there: check RAG_EMBED_BASE_URL "
            "and RAG_EMBED_MODEL (is the server started for embeddings?)"
        )
    if resp.status_code >= 400:
        raise EmbeddingError(
            f"the embedding server at {url} answered {resp.status_code}: {_snippet(resp.text)}"
        )
    try:
        data = resp.json()["data"]
        rows = sorted(data, key=lambda d: d["index"]) if all("index" in d for d in data) else data
        vecs = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EmbeddingError(
            f"the embedding server at {url} answered something other than OpenAI embeddings: {_snippet(resp.text)}"
        ) from None
    if vecs.ndim != 2 or len(vecs) != n or vecs.shape[1] == 0:
        raise EmbeddingError(
            f"the embedding server at {url} returned {len(vecs)} vectors of shape {vecs.shape[1:]} for {n} texts"
        )
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    if not np.all(np.isfinite(norms)) or np.any(norms == 0):
        raise EmbeddingError(f"the embedding server at {url} returned zero, NaN or infinite vectors")
    return vecs / norms


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _load_tokenizer(path: Path) -> "Tokenizer":
    from tokenizers import Tokenizer

    file = path / "tokenizer.json" if path.is_dir() else path
    try:
        tokenizer = Tokenizer.from_file(str(file))
    except Exception as exc:  # tokenizers raises its own Exception type for a missing or bad file
        raise EmbeddingError(f"cannot read the tokenizer {file} (RAG_EMBED_TOKENIZER): {exc}") from None
    tokenizer.no_padding()  # a tokenizer.json may pad or truncate; counting must do neither
    tokenizer.no_truncation()
    return tokenizer
