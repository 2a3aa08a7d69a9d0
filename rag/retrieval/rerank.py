"""The reranking stage: re-score the top candidates with a closer look at each.

`Reranker` is the interface; one implementation per file (`rerank_window.py`,
`rerank_crossencoder.py`, `rerank_http.py`), picked once from settings by `load_reranker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..config import RerankerKind, Settings

if TYPE_CHECKING:
    from ..embedding.base import Embedder
    from ..storage.store import ChunkRow


class RerankUnavailable(RuntimeError):
    """A reranking server was down, too slow or answered nonsense: the first-stage ranking stands."""


@dataclass
class RerankStatus:
    """What became of one query's reranking: done, or skipped for `error`."""

    used: bool = False
    error: str | None = None


class Reranker(Protocol):
    name: str

    def scores(self, question: str, chunks: list["ChunkRow"], titles: list[str | None]) -> list[float]:
        """One score per chunk, higher is better; only their order matters."""
        ...


def load_reranker(settings: Settings, embedder: "Embedder") -> Reranker | None:
    kind = settings.reranker
    if settings.reranker_model and kind is RerankerKind.none:
        kind = RerankerKind.cross_encoder
    if kind is RerankerKind.none:
        return None
    if kind is RerankerKind.http:
        from .rerank_http import HttpReranker

        return HttpReranker.from_settings(settings)
    if kind is RerankerKind.window:
        from .rerank_window import WindowReranker

        return WindowReranker(embedder)
    if not settings.reranker_model:
        raise ValueError("RAG_RERANKER=cross-encoder needs RAG_RERANKER_MODEL (a local path or cached hub id)")
    from .rerank_crossencoder import CrossEncoderReranker

    return CrossEncoderReranker(settings.reranker_model)
