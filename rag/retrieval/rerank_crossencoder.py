"""Reranker from any sentence-transformers CrossEncoder given by local path or cached hub id."""

from __future__ import annotations

from ..storage.store import ChunkRow


class CrossEncoderReranker:
    name = "cross-encoder"

    def __init__(self, model: str) -> None:
        from sentence_transformers import CrossEncoder

        self.model = CrossEncoder(model, device="cpu")

    def scores(self, question: str, chunks: list[ChunkRow], titles: list[str | None]) -> list[float]:
        pairs = [(question, f"{t}\n{c.text}" if t else c.text) for c, t in zip(chunks, titles)]
        return [float(s) for s in self.model.predict(pairs, show_progress_bar=False)]
