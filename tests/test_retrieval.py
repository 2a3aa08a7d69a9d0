from rag.config import RetrievalMode
from rag.retrieval import fts_query, rrf


def test_rrf_against_hand_computed_ranks():
    fused = dict(rrf([[1, 2, 3], [3, 1]], k=60))
    assert abs(fused[1] - (1 / 61 + 1 / 62)) < 1e-12
    assert abs(fused[3] - (1 / 63 + 1 / 61)) < 1e-12
    assert abs(fused[2] - 1 / 62) < 1e-12
    assert [i for i, _ in rrf([[1, 2, 3], [3, 1]], k=60)] == [1, 3, 2]


def test_fts_query_quotes_terms():
    assert fts_query('What does "NATO" OR Russia* want?') == '"nato" OR "russia" OR "want"'
    assert fts_query("what is it?") == ""


def test_nato_question_finds_three_articles(seeds_service):
    hits = seeds_service.retriever.search("What does Russia demand on NATO?", 5)
    assert len({h.chunk.doc_id for h in hits}) >= 3


def test_modes_return_ranked_hits(seeds_service):
    for mode in RetrievalMode:
        hits = seeds_service.retriever.search("Izvestiya interview with Grushko", 5, mode)
        assert hits and hits[0].chunk.doc_id == "004_a432fe192a64c82f", mode
        assert all(-1.0 <= h.relevance <= 1.0 for h in hits)
