"""Find passages: dense (FAISS), lexical (FTS5 BM25) or both fused by reciprocal rank fusion."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .config import RetrievalMode
from .embedding import Embedder
from .index import Index
from .store import ChunkRow
from .text import STOPWORDS, words

# RRF's k: 60 is the constant of Cormack et al. (2009); it flattens the head of each ranking so
# one list's first place cannot outvote agreement further down both lists.
RRF_K = 60
# Each ranking contributes this many candidates (x k) before fusion.
CANDIDATE_FACTOR = 4
MIN_CANDIDATES = 20


@dataclass(frozen=True)
class Hit:
    chunk: ChunkRow
    score: float  # what ranks the list (cosine, BM25 or RRF, by mode)
    relevance: float  # cosine of question and chunk: comparable across modes, used for refusal


class Retriever:
    def __init__(self, index: Index, embedder: Embedder) -> None:
        self.index = index
        self.embedder = embedder

    def search(self, question: str, k: int, mode: RetrievalMode = RetrievalMode.dense) -> list[Hit]:
        qvec = self.embedder.encode([question])[0]
        n = max(MIN_CANDIDATES, k * CANDIDATE_FACTOR)
        if mode is RetrievalMode.dense:
            return [Hit(c, s, s) for c, s in self.index.search(qvec, k)]
        lexical = self._lexical(question, n if mode is RetrievalMode.hybrid else k)
        if mode is RetrievalMode.lexical:
            return self._with_relevance(lexical, qvec)[:k]
        dense = self.index.search(qvec, n)
        fused = rrf([[c.vid for c, _ in dense], [c.vid for c, _ in lexical]])
        chunks = {c.vid: c for c, _ in dense + lexical}
        cosines = {c.vid: s for c, s in dense}
        top = [(chunks[vid], score) for vid, score in fused[:k]]
        return self._with_relevance(top, qvec, cosines)

    def _lexical(self, question: str, n: int) -> list[tuple[ChunkRow, float]]:
        match = fts_query(question)
        if not match:
            return []
        hits = self.index.store.lexical(match, n)
        rows = self.index.store.chunks_by_vid([vid for vid, _ in hits])
        return [(rows[vid], s) for vid, s in hits if vid in rows]

    def _with_relevance(
        self, ranked: list[tuple[ChunkRow, float]], qvec: np.ndarray, known: dict[int, float] | None = None
    ) -> list[Hit]:
        known = dict(known or {})
        missing = [c.vid for c, _ in ranked if c.vid not in known]
        if missing:
            for vid, vec in zip(missing, self.index.vectors_for(missing)):
                known[vid] = float(vec @ qvec)
        return [Hit(c, s, known[c.vid]) for c, s in ranked]


def rrf(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1."""
    scores: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


def fts_query(question: str) -> str:
    """An FTS5 OR-query of the question's content words, each quoted (no operator injection)."""
    terms = dict.fromkeys(w.lower() for w in words(question) if w.lower() not in STOPWORDS)
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
