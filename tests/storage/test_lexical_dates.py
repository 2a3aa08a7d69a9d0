"""Word search under a date limit keeps the bm25s base: its scores masked to the admitted chunks
rank exactly as the unmasked base ranks them with the others left out; only chunks newer than
the base go to FTS5 (a real index, the real model; the size threshold lowered so a few articles
make a base)."""

import pytest

from rag.ingestion.documents import Document
from rag.storage import lexical
from rag.storage.lexical import tokens
from rag.storage.store import Filters
from rag.storage.timerange import Plan


@pytest.fixture()
def small_base(monkeypatch):
    monkeypatch.setattr(lexical, "BASE_ABOVE_CHUNKS", 5)


TOPICS = ["harbour tramline costs", "river flood barriers", "school meals budget", "coastal wind farm",
          "hospital wing opening", "ferry contract talks"]
ARTICLES = [
    Document(f"a{i}", f"Council report {i}: the {TOPICS[i % len(TOPICS)]} were debated again, and the "
             f"council vote on the {TOPICS[(i + 1) % len(TOPICS)]} followed.",
             published=None if i % 7 == 3 else f"2022-06-{1 + i:02d}")
    for i in range(28)
]


def docs_of(s, hits):
    rows = s.index.store.chunks_by_vid([v for v, _ in hits])
    return [rows[v].doc_id for v, _ in hits]


@pytest.mark.parametrize("as_of,undated", [("2022-06-08", True), ("2022-06-08", False), ("2022-06-30", False),
                                           ("2022-05-01", True)])
def test_a_date_limit_masks_the_base_instead_of_scanning_fts5(make_service, small_base, as_of, undated):
    s = make_service()
    s.ingest(ARTICLES)
    assert s.index.lexical.base() is not None
    question = "council vote on the ferry contract talks and the harbour tramline"
    filters = Filters(as_of=as_of, include_undated=undated)
    plan = Plan()
    got = s.index.lexical.search(question, 10, filters, plan=plan)
    admitted = {d.id for d in ARTICLES if (d.published is None and undated) or
                (d.published is not None and d.published <= as_of)}
    assert plan.lexical.startswith("bm25s:")
    assert set(docs_of(s, got)) <= admitted
    whole = s.index.lexical.base().search(tokens(question), 100)
    want = [(v, sc) for v, sc in whole if docs_of(s, [(v, sc)])[0] in admitted][:20]
    assert [sc for _, sc in got] == [sc for _, sc in want]  # the same ranking (ties in any order)
    if admitted == {d.id for d in ARTICLES}:
        assert plan.lexical == "bm25s:all"


def test_newer_chunks_come_from_fts5_under_the_same_limit(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES)
    s.ingest([Document("late", "The ferry contract talks collapsed again at the council.", published="2022-07-01"),
              Document("early", "The ferry contract talks opened at the council.", published="2022-06-02")])
    base = s.index.lexical.base()
    assert max(base.vids) < max(s.index.store.chunk_vids("early"))  # both newer than the base
    got = docs_of(s, s.index.lexical.search("ferry contract talks", 10, Filters(as_of="2022-06-20")))
    assert "early" in got and "late" not in got


def test_source_limits_still_go_to_fts5(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES)
    plan = Plan()
    s.index.lexical.search("ferry contract", 10, Filters(doc_ids=("a5",), as_of="2022-06-30"), plan=plan)
    assert plan.lexical == "fts5"
