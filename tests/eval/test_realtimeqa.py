"""The RealTime QA runner on a small hand-made benchmark: scoring, and "already ingested" by content."""

from __future__ import annotations

import gzip
import json

import pytest

from eval import realtimeqa as rt
from rag.schema import ChoiceOut, Passage, QueryResponse


def _response(urls: list[str], picked: int | None, answer: str) -> QueryResponse:
    passages = [
        Passage(rank=i + 1, score=1.0, doc_id=f"d{i}", chunk_id=f"d{i}#0", source=u, start=0, end=4, text="text")
        for i, u in enumerate(urls)
    ]
    choice = ChoiceOut(picked=None if picked is None else "x", index=picked, abstained=picked is None, text="x")
    from rag.schema import AnswerOut

    return QueryResponse(question="q", answerable=True, answer=AnswerOut(text=answer, citations=[]), passages=passages,
                         choice=choice)


def test_scores_and_summary_by_hand():
    q1 = {"id": "1", "gold_url": "u/gold", "choices": ["A", "B"], "answer": "B"}
    q2 = {"id": "2", "gold_url": "u/gold2", "choices": ["C", "D", "E"], "answer": "“E”"}
    q2["choices"][2] = "“E”"
    rows = [
        rt.score(q1, _response(["u/x", "u/gold"], 1, "It was B [2]."), 10.0),  # gold at rank 2, right pick
        rt.score(q2, _response(["u/y"], None, "Nothing."), 30.0),  # gold missing, abstained
    ]
    assert rows[0]["gold_rank"] == 2 and rows[0]["rr@10"] == 0.5 and rows[1]["gold_rank"] is None
    out = rt.summarise(rows)
    assert out["hit@1"] == 0.0 and out["hit@5"] == 0.5 and out["mrr@10"] == 0.25
    assert out["mc_accuracy"] == 0.5 and out["mc_abstention_rate"] == 0.5
    assert out["answer_in_answer"] == 0.5  # "B" is in "It was B [2]."
    assert out["latency_p50_ms"] == 20.0 and out["questions"] == 2.0


def _corpus(path, published: str) -> None:
    rows = [{"id": f"a{i}", "url": f"https://n.example/{i}", "title": None, "published": published,
             "text": f"Story {i} about the Marrick harbour ferry and its budget. " * 6} for i in range(3)]
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))


def test_already_ingested_means_the_same_content_not_the_same_path(make_service, tmp_path):
    s = make_service()
    corpus = tmp_path / "corpus.jsonl.gz"
    _corpus(corpus, "2022/06/12")
    first = rt.ensure_ingested(s, corpus)
    assert first is not None and s.health().documents == 3
    vids = {d.id: s.index.store.chunk_vids(d.id) for d in s.documents()}
    assert rt.ensure_ingested(s, corpus) == first  # same content: nothing to do
    _corpus(corpus, "Jun 13, 2022")  # same path, new dates
    assert rt.ensure_ingested(s, corpus) == pytest.approx(first)  # the embedding ingest's figure stays
    assert {d.published for d in s.documents()} == {"2022-06-13"}
    assert {d.id: s.index.store.chunk_vids(d.id) for d in s.documents()} == vids  # nothing re-embedded
    assert s.index.store.meta("benchmark_update_seconds") is not None
