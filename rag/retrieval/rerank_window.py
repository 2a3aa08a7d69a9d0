"""Offline reranker: the bi-encoder re-reads each candidate as windows of two sentences.

A chunk's single vector averages everything it says; the best two-sentence window scores the
part that answers. Runs with the packaged model, so it needs no extra weights.
"""

from __future__ import annotations

from ..embedding.base import Embedder
from ..storage.store import ChunkRow
from ..text import sentences

WINDOW = 2  # sentences per window: one sentence is often too little context, three dilute it


class WindowReranker:
    name = "window"

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def scores(self, question: str, chunks: list[ChunkRow], titles: list[str | None]) -> list[float]:
        windows: list[str] = []
        owner: list[int] = []
        for i, (chunk, title) in enumerate(zip(chunks, titles)):
            sents = [s.text for s in sentences(chunk.text)] or [chunk.text]
            for j in range(max(1, len(sents) - WINDOW + 1)):
                text = " ".join(sents[j : j + WINDOW])
                windows.append(f"{title}\n{text}" if title else text)
                owner.append(i)
        vecs = self.embedder.encode([question] + windows)
        sims = vecs[1:] @ vecs[0]
        best = [-1.0] * len(chunks)
        for i, s in zip(owner, sims):
            best[i] = max(best[i], float(s))
        return best
