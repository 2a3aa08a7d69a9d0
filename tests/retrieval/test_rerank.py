"""The reranking stage with a real offline scorer (the bi-encoder over sentence windows)."""

import pytest

from rag.config import RerankerKind, Settings
from rag.retrieval.rerank import load_reranker
from rag.retrieval.rerank_window import WindowReranker
from rag.retrieval.search import Retriever, rrf


def test_window_scores_prefer_the_answering_chunk(seeds_service, embedder):
    store = seeds_service.index.store
    rows = store.chunks_by_vid(store.chunk_vids("004_a432fe192a64c82f") + store.chunk_vids("002_27d049c186dd46c9"))
    chunks = list(rows.values())
    scores = WindowReranker(embedder).scores("Which Russian newspaper interviewed Grushko?", chunks, [None] * len(chunks))
    best = chunks[max(range(len(chunks)), key=scores.__getitem__)]
    assert "Izvestiya" in best.text


def test_reranked_order_is_rrf_of_both_rankings(seeds_service, embedder):
    plain = Retriever(seeds_service.index, embedder)
    reranker = WindowReranker(embedder)
    ranked = plain._candidates("security guarantees", embedder.encode(["security guarantees"])[0], 8,
                               seeds_service.settings.retrieval_mode, None)[:8]
    docs = seeds_service.index.store.documents_by_id(c.doc_id for c, _ in ranked)
    scores = reranker.scores("security guarantees", [c for c, _ in ranked], [docs[c.doc_id].title for c, _ in ranked])
    by_score = sorted(range(len(ranked)), key=lambda i: -scores[i])
    want = [ranked[i][0].vid for i, _ in rrf([list(range(len(ranked))), by_score])]
    r = Retriever(seeds_service.index, embedder, reranker=reranker, rerank_candidates=8)
    assert [c.vid for c, _ in r._rerank("security guarantees", ranked, docs)] == want


def test_reranker_choice_from_settings(embedder):
    assert load_reranker(Settings(), embedder) is None
    assert load_reranker(Settings(reranker=RerankerKind.window), embedder).name == "window"
    with pytest.raises(ValueError, match="RAG_RERANKER_MODEL"):
        load_reranker(Settings(reranker=RerankerKind.cross_encoder), embedder)
    with pytest.raises(ValueError):
        Settings(reranker="magic")
