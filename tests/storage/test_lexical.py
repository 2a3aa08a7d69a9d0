"""The lexical engine: the bm25s base against a plain BM25, and its upkeep under adds and deletes
(a real index, the real model; the size threshold is lowered so a few articles make a base)."""

import json
import math

import pytest

from rag.storage import lexical
from rag.ingestion.documents import Document
from eval.load import synthetic_article
from rag.storage.lexical import K1, B, tokens


def plain_bm25(corpus: list[list[str]], query: list[str]) -> list[float]:
    """BM25 as SQLite FTS5 defines it, written out: Robertson's IDF floored at zero (FTS5: 1e-6)
    and the (k1 + 1) factor on the tf part, so base and FTS5 scores can be merged by value."""
    n = len(corpus)
    avgdl = sum(map(len, corpus)) / n
    out = []
    for doc in corpus:
        score = 0.0
        for term in set(query):
            df = sum(term in d for d in corpus)
            tf = doc.count(term)
            if tf:
                idf = max(0.0, math.log((n - df + 0.5) / (df + 0.5)))
                score += idf * tf * (K1 + 1) / (tf + K1 * (1 - B + B * len(doc) / avgdl))
        out.append(score)
    return out


@pytest.fixture()
def small_base(monkeypatch):
    monkeypatch.setattr(lexical, "BASE_ABOVE_CHUNKS", 5)


ARTICLES = [
    Document(f"a{i}", f"Council story {i}. " + text)
    for i, text in enumerate([
        "The harbour tramline was approved after a long debate about costs.",
        "Flood barriers along the river were delayed by the regional ministers.",
        "The school meals budget was cut, union leaders said on Monday.",
        "A wind farm off the coast was backed by local traders and the mayor.",
        "The hospital wing will open in spring, the health trust announced.",
        "Ferry contract talks collapsed over fuel prices and timetables.",
        "The library closure was postponed pending a public consultation.",
        "Rail station upgrades were questioned by an independent panel.",
    ])
]
# 16 more distinct one-chunk articles: then one article more or fewer is under REBUILD_SHARE.
FILLER = [Document(a["id"], a["text"]) for a in map(synthetic_article, range(16))]


def test_tokens_drop_stopwords_and_stem():
    assert tokens("The talks were delayed, and the councils' votes?") == ["talk", "delay", "council", "vote"]


def test_base_scores_match_plain_bm25(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES)
    base = s.index.lexical.base()
    assert base is not None and base.chunks == len(base.vids)
    bodies = dict(s.index.store.connect().execute("SELECT rowid, body FROM chunks_fts").fetchall())
    vids = [int(v) for v in base.vids]
    corpus = [tokens(bodies[v]) for v in vids]
    query = tokens("Which council story says contract talks collapsed over fuel?")
    want = sorted(((v, sc) for v, sc in zip(vids, plain_bm25(corpus, query)) if sc > 0), key=lambda p: -p[1])
    got = base.search(query, 10)
    # "council" and "story" are in every article: IDF 0, so only the other words score
    assert 0 < len(got) == len(want) < len(vids)
    assert dict(got) == pytest.approx(dict(want), rel=1e-4)  # ties may come in any order
    assert [sc for _, sc in got] == sorted((sc for _, sc in got), reverse=True)
    assert got[0][0] == want[0][0] and "ferri" in tokens(bodies[got[0][0]])


def test_base_scores_are_on_fts5s_scale(make_service, small_base):
    """The base's and FTS5's scores of one chunk agree, so merging them by value is fair to the
    newest chunks (FTS5's tokens and stems differ slightly from ours: a few percent)."""
    s = make_service()
    s.ingest(ARTICLES + FILLER)
    base = s.index.lexical.base()
    assert base is not None
    for question in ("ferry contract talks collapsed over fuel prices", "flood barriers river delayed ministers",
                     "hospital wing open spring health trust"):
        ours = dict(base.search(tokens(question), 50))
        fts = dict(s.index.store.lexical(lexical.fts_query(question), 50))
        shared = sorted(set(ours) & set(fts))
        assert shared and max(ours, key=ours.get) == max(fts, key=fts.get)
        for vid in shared:
            assert ours[vid] == pytest.approx(fts[vid], rel=0.15), (question, vid)


def test_base_of_other_scoring_is_not_used_and_is_rebuilt(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES)
    conn = s.index.store.connect()
    info = json.loads(s.index.store.meta(lexical.META_KEY))
    old = {k: v for k, v in info.items() if k != "scoring"}  # as written before scores were scaled
    with conn:
        conn.execute("UPDATE meta SET value=? WHERE key=?", (json.dumps(old), lexical.META_KEY))
    assert make_service().index.lexical.base() is None  # FTS5 alone, correct if slower
    report = s.ingest(ARTICLES)  # nothing new, as `rag ingest` of the same folder again
    assert not report.added and not report.replaced
    assert json.loads(s.index.store.meta(lexical.META_KEY))["scoring"] == lexical.SCORING
    assert s.index.lexical.base() is not None


def test_base_plus_newer_chunks_minus_deleted(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES + FILLER)
    assert s.index.store.counts()[1] == 24
    info = json.loads(s.index.store.meta(lexical.META_KEY))
    # one new article: too small a change to rebuild, so it is found through FTS5 above max_vid
    s.ingest([Document("new", "Council story 9. Marrick bus depot plans were revised by the transport board.")])
    assert json.loads(s.index.store.meta(lexical.META_KEY)) == info
    hits = s.retriever.search("Marrick bus depot", 3, mode=lexical_mode())
    assert hits[0].chunk.doc_id == "new"
    # a deleted article of the base is never shown, though the base still holds its words
    s.delete(["a5"])
    assert all(h.chunk.doc_id != "a5" for h in s.retriever.search("ferry contract fuel prices", 5, mode=lexical_mode()))
    # enough change since the base: the next commit rebuilds it over everything present
    s.delete(["a6", "a7", "a1"])
    rebuilt = json.loads(s.index.store.meta(lexical.META_KEY))
    assert rebuilt != info and rebuilt["chunks"] == s.index.store.counts()[1]
    assert [p.name for p in s.index.folder.glob("lexical-*")] == [rebuilt["folder"]]
    assert s.retriever.search("Marrick bus depot", 3, mode=lexical_mode())[0].chunk.doc_id == "new"


def test_small_index_drops_its_base(make_service, small_base, monkeypatch):
    s = make_service()
    s.ingest(ARTICLES)
    assert s.index.lexical.base() is not None
    monkeypatch.setattr(lexical, "BASE_ABOVE_CHUNKS", 100)
    s.delete(["a0"])
    assert s.index.store.meta(lexical.META_KEY) is None and not list(s.index.folder.glob("lexical-*"))
    assert s.index.lexical.base() is None
    assert s.retriever.search("wind farm coast", 3, mode=lexical_mode())[0].chunk.doc_id == "a3"


def test_damaged_base_falls_back_to_fts5(make_service, small_base):
    s = make_service()
    s.ingest(ARTICLES)
    folder = s.index.folder / json.loads(s.index.store.meta(lexical.META_KEY))["folder"]
    (folder / "vids.npy").write_bytes(b"garbage")
    fresh = make_service()  # a new process would load the damaged files
    assert fresh.index.lexical.base() is None
    assert fresh.retriever.search("hospital wing spring", 3, mode=lexical_mode())[0].chunk.doc_id == "a4"


def lexical_mode():
    from rag.config import RetrievalMode

    return RetrievalMode.lexical


def test_an_article_limit_scores_only_those_rows_and_ranks_them_as_the_whole_index_does(make_service):
    from rag.storage import Filters

    s = make_service()
    s.ingest(ARTICLES)
    s.ingest(FILLER)
    s.ingest([Document("late", "The ferry contract and the harbour tramline were approved by the council.")])
    store = s.index.store
    match = lexical.fts_query("council ferry contract harbour tramline costs")
    listed = ("a0", "a5", "late")
    every = [(v, sc) for v, sc in store.lexical(match, 100) if store.chunks_by_vid([v])[v].doc_id in listed]
    assert store.lexical(match, 100, Filters(doc_ids=listed)) == every and len(every) == 3
    assert store.lexical(match, 2, Filters(doc_ids=listed)) == every[:2]
    assert store.lexical(match, 10, Filters(doc_ids=("no-such-article",))) == []
    assert store.vid_range(["a5", "late"]) == (min(store.chunk_vids("a5")), max(store.chunk_vids("late")))
