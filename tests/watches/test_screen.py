"""The commit pre-screen (rag/watches/screen.py) on real news: RealTime QA articles and all 112
quiz questions as standing questions. A commit evaluated with the screen sends exactly what the
full rule, asked of every watch, would send; the screen only spares the watches it refuses."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from rag.ingestion.documents import document_from_record
from rag.watches import WatchIn
from rag.watches import screen

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "realtimeqa-2022"
pytestmark = pytest.mark.skipif(not (DATA / "corpus.jsonl.gz").exists(), reason="RealTime QA data not present")
# The first quiz week (2022-06-10 .. 06-16) is the commit: its gold articles and others of the
# week; the week before is the archive the watches are made against.
WEEK = ("2022/06/10", "2022/06/16")
BEFORE = ("2022/06/03", "2022/06/09")
# Bars spread around the new chunks' best cosines (0.2 .. 0.75 here), so the screen refuses some
# watches and passes others: None is RAG_MIN_RELEVANCE's floor.
BARS = [None, 0.45, 0.55, 0.65]


def _corpus() -> tuple[list[dict], list[dict]]:
    with gzip.open(DATA / "corpus.jsonl.gz", "rt") as f:
        rows = [json.loads(line) for line in f]
    questions = [json.loads(line) for line in (DATA / "dev.jsonl").read_text().splitlines() if line.strip()]
    return rows, questions


def _week(rows: list[dict], span: tuple[str, str]) -> list[dict]:
    return sorted((r for r in rows if span[0] <= r["published"] <= span[1]), key=lambda r: (r["published"], r["id"]))


def test_a_commit_sends_what_the_full_rule_alone_would(make_service, receiver):
    rows, questions = _corpus()
    gold_urls = {q["gold_url"] for q in questions}
    week = _week(rows, WEEK)
    commit = [r for r in week if r["url"] in gold_urls] + [r for r in week if r["url"] not in gold_urls][:14]
    service = make_service(fetch_allow_private=True)
    service.ingest([document_from_record(r, "realtimeqa") for r in _week(rows, BEFORE)[:8]])
    for i, q in enumerate(questions):
        service.watches.add(WatchIn(question=q["question"], url=receiver.url, min_relevance=BARS[i % len(BARS)]))
    before = service.watches.store.watches()  # as the commit finds them (their last answers)
    vectors = service.watches._vectors(before)

    report = service.ingest([document_from_record(r, "realtimeqa") for r in commit])
    docs = service.index.store.documents_by_id(report.added)
    fresh = [d for d in report.added if docs[d].dup_of is None]  # as the commit's evaluation sees them
    assert len(report.added) == len(commit) and fresh

    # The full rule, asked of every watch with no screen.
    full = {w.id: found for w in before if (found := service.watches.evaluate(w, fresh, vectors[before.index(w)]))}
    # What the commit sent, screened.
    sent = {}
    for w in before:
        for e in service.watches.events(w.id):
            sent[w.id] = e.payload["data"]
    assert sent.keys() == full.keys()
    for wid, found in full.items():
        assert sent[wid]["documents"] == found.documents
        assert sent[wid]["answer"]["text"] == found.answer.text
        assert [p["chunk_id"] for p in sent[wid]["passages"]] == [p.chunk_id for p in found.passages]

    # The screen did spare watches, and only ones the full rule refuses.
    go = service.watches._screen(before, vectors, [docs[d] for d in fresh])
    assert 0 < int(go.sum()) < len(before)
    assert all(go[i] for i, w in enumerate(before) if w.id in full)
    assert len(full) >= 10  # the week's gold articles answer their questions


def test_the_best_score_is_the_best_over_the_chunks_and_the_margin_keeps_a_tie():
    q = np.eye(3, 4, dtype=np.float32)
    c = np.array([[0.1, 0.2, 0.0, 0.0], [0.5, -0.3, 0.0, 0.1]], dtype=np.float32)
    assert screen.best_scores(q, c).tolist() == pytest.approx([0.5, 0.2, 0.0])
    assert screen.best_scores(q, c[:0]).tolist() == [-np.inf] * 3
    assert screen.passing(np.array([0.5, 0.2, 0.0], np.float32), np.array([0.5, 0.2 + screen.MARGIN / 2, 0.01])).tolist() \
        == [True, True, False]
