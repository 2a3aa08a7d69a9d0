"""eval/bench_timeline.py's parts that decide its figures: the questions sampled, the subset built
from a tiny corpus, and a timeline's row scored by hand."""

from __future__ import annotations

import gzip
import json
from datetime import date

from eval.bench_timeline import sample, score, subset, summarise
from rag.schema import CitedSentence, TimelineArticle, TimelineEvent, TimelineResponse


def test_the_sample_spreads_over_the_list_and_keeps_its_ends():
    items = [{"id": i} for i in range(112)]
    picked = sample(items, 40)
    assert len(picked) == 40 and picked[0]["id"] == 0 and picked[-1]["id"] == 111
    assert len({p["id"] for p in picked}) == 40
    assert sample(items[:3], 40) == items[:3] and sample(items, 1) == items[:1]


def test_the_subset_is_the_gold_article_and_its_weeks_closest_neighbours(tmp_path):
    rows = [
        {"id": "gold", "url": "u/gold", "published": "2022/06/12", "text": "Netflix renews Squid Game."},
        {"id": "near", "url": "u/near", "published": "2022/06/14", "text": "Squid Game returns on Netflix."},
        {"id": "far", "url": "u/far", "published": "2022/06/14", "text": "Rain in Paris."},
        {"id": "late", "url": "u/late", "published": "2022/06/17", "text": "Squid Game Netflix season news."},
        {"id": "old", "url": "u/old", "published": "2022/06/01", "text": "Squid Game Netflix season news."},
    ]
    corpus = tmp_path / "c.jsonl.gz"
    with gzip.open(corpus, "wt", encoding="utf-8") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    q = {"question": "Which Netflix show, Squid Game or another, got a season?", "date": "2022/06/16", "gold_url": "u/gold"}
    kept = [json.loads(line)["id"] for line in subset(corpus, [q], 1)]
    assert kept == ["gold", "near"]  # in the quiz week, most words shared; later and older ones left out
    assert [json.loads(line)["id"] for line in subset(corpus, [q], 5)] == ["gold", "near", "far"]


def _article(doc_id: str, published: str, source: str, also_in: list[str] | None = None) -> TimelineArticle:
    return TimelineArticle(doc_id=doc_id, published=published, source=source, relevance=0.5, also_in=also_in or [])


def test_a_row_reads_the_gold_article_its_event_and_the_answer():
    texts = {"a": "Netflix renewed Squid Game on Sunday.", "b": "Squid Game is back.", "c": "Season two of Squid Game."}
    events = [
        TimelineEvent(date=date(2022, 6, 12), articles=[_article("a", "2022-06-12", "u/a"), _article("b", "2022-06-13", "u/b")],
                      sentence=CitedSentence(doc_id="a", start=0, end=37, text=texts["a"])),
        TimelineEvent(date=date(2022, 6, 20), articles=[_article("c", "2022-06-20", "u/c", ["d"])],
                      sentence=CitedSentence(doc_id="c", start=0, end=25, text=texts["c"])),
    ]
    r = TimelineResponse(question="q", answerable=True, events=events)
    q = {"id": "x", "answer": "Squid Game", "gold_url": "u/b"}
    row = score(q, r, texts, {"d": "u/d"})
    assert row["in_order"] and row["within_event_days"] and row["offsets_exact"]
    assert row["gold_on_timeline"] and row["gold_days_after_event"] == 1 and row["gold_gives_key"] is False
    assert row["answer_in_gold_event_key"] and row["event_spans_days"] == [1, 0] and row["event_sizes"] == [2, 1]
    copy = score({**q, "gold_url": "u/d"}, r, texts, {"d": "u/d"})  # a republished copy counts as the gold article
    assert copy["gold_on_timeline"] and copy["gold_days_after_event"] == 0 and copy["gold_gives_key"] is True
    report = summarise([row, copy], [10.0, 30.0], 4, 8, None)
    assert report["gold_on_timeline"] == 1.0 and report["gold_published_on_its_event_date"] == 0.5
    assert report["event_span_days"] == {"0": 2, "1": 2, "2": 0} and report["timeline_ms_p50"] == 20.0
