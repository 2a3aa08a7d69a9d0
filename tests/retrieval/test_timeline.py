"""Story timelines (rag/retrieval/timeline.py, Service.timeline) on a real index with the real
embedder: the handmade story of tests/stories.py, whose events are clear, and the seeds, which
are undated."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from rag.ingestion import Document
from rag.retrieval import timeline
from rag.schema import TimelineQuery
from stories import COPY, EVENTS, QUESTION, STORY


@pytest.fixture(scope="module")
def story(tmp_path_factory, embedder):
    from rag.config import Settings
    from rag.service import Service

    folder = tmp_path_factory.mktemp("timeline")
    service = Service(Settings(index_dir=folder / "index", seeds_dir=folder / "no-seeds"), embedder=embedder)
    service.ingest(STORY + [COPY])
    yield service
    service.close()


def test_the_story_is_grouped_into_its_events_oldest_first(story):
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-06-01"))
    assert r.answerable
    assert [(e.date, {a.doc_id for a in e.articles}) for e in r.events] == EVENTS
    first = r.events[0].articles
    assert [a.doc_id for a in first] == ["council-approves", "vote-backs-tram"]  # oldest first within an event too
    assert first[0].also_in == ["council-approves-wire"] and first[0].source == "https://news.example/a1"
    assert [a.doc_id for a in r.undated] == ["tram-explainer"]  # relevant, but no timeline can place it
    assert all(a.doc_id != "cake" for e in r.events for a in e.articles)


def test_each_event_is_dated_by_its_earliest_article_and_cites_a_sentence_at_its_offsets(story):
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-06-01"))
    for e in r.events:
        assert e.date == min(date.fromisoformat(a.published[:10]) for a in e.articles)
        assert all(0 <= (date.fromisoformat(a.published[:10]) - e.date).days <= timeline.EVENT_DAYS for a in e.articles)
        s = e.sentence
        assert s.doc_id in {a.doc_id for a in e.articles}
        assert story.document(s.doc_id).text[s.start : s.end] == s.text
        assert len(s.text) >= timeline.MIN_SENTENCE_CHARS and "tram" in s.text.lower()
        doc = story.document(s.doc_id)
        assert (s.title, s.source, s.published) == (doc.title, doc.source, doc.published)
    assert "halted construction" in r.events[2].sentence.text


def test_as_of_leaves_later_articles_out(story):
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-03-12"))
    assert [(e.date, {a.doc_id for a in e.articles}) for e in r.events] == EVENTS[:2] + [
        (date(2025, 3, 12), {"court-halts"})]  # the judge's report came out on the 13th
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-03-13T09:00:00Z"))
    assert {a.doc_id for a in r.events[-1].articles} == {"court-halts"}  # 09:30 that day is later still
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-03-13T10:00:00Z"))
    assert {a.doc_id for a in r.events[-1].articles} == {"court-halts", "judge-stops-work"}


def test_the_filters_mean_what_they_mean_on_query(story):
    ask = {"question": QUESTION, "as_of": "2025-06-01"}
    r = story.timeline(TimelineQuery(**ask, published_after="2025-03-10", published_before="2025-03-31"))
    assert [e.date for e in r.events] == [date(2025, 3, 12)] and r.undated[0].doc_id == "tram-explainer"
    r = story.timeline(TimelineQuery(**ask, include_undated=False))
    assert r.undated == [] and len(r.events) == 4
    r = story.timeline(TimelineQuery(**ask, source="https://daily.example/"))
    assert [{a.doc_id for a in e.articles} for e in r.events] == [{"vote-backs-tram"}, {"judge-stops-work"}]
    r = story.timeline(TimelineQuery(**ask, k=1))
    assert sum(len(e.articles) for e in r.events) + len(r.undated) == 1


def test_a_question_the_articles_do_not_cover_lists_nothing(story):
    r = story.timeline(TimelineQuery(question="Who won the Paris marathon?", as_of="2025-06-01"))
    assert not r.answerable and r.events == [] and r.undated == []
    r = story.timeline(TimelineQuery(question=QUESTION, as_of="2025-03-01"))  # before the story began
    assert [a.doc_id for a in r.undated] == ["tram-explainer"] and r.events == []


def test_an_event_spans_at_most_event_days_after_its_first_article(story, embedder, tmp_path):
    """The same report on day 0 and day EVENT_DAYS is one event; on day EVENT_DAYS + 1, two."""
    from rag.config import Settings
    from rag.service import Service

    text = "The Lakeview tram line won approval from the city council by seven votes to two."
    days = ["2025-05-01", f"2025-05-{1 + timeline.EVENT_DAYS:02d}", f"2025-05-{2 + timeline.EVENT_DAYS:02d}"]
    docs = [Document(f"r{i}", f"{text} Report number {i} by desk {'ABC'[i]}, on its own page {i * 7}.", None, None, d)
            for i, d in enumerate(days)]
    service = Service(Settings(index_dir=tmp_path / "index", seeds_dir=tmp_path / "none"), embedder=embedder)
    try:
        service.ingest(docs)
        r = service.timeline(TimelineQuery(question=QUESTION, as_of="2025-06-01"))
        assert [[a.doc_id for a in e.articles] for e in r.events] == [["r0", "r1"], ["r2"]]
    finally:
        service.close()


def test_undated_seeds_are_listed_apart(seeds_service):
    r = seeds_service.timeline(TimelineQuery(question="What does Russia demand on NATO?"))
    assert r.answerable and r.events == [] and len(r.undated) >= 3
    assert all(a.published is None and a.relevance >= seeds_service.settings.min_relevance for a in r.undated)
    r = seeds_service.timeline(TimelineQuery(question="What does Russia demand on NATO?", include_undated=False))
    assert not r.answerable and r.undated == []


@pytest.mark.parametrize("bad,says", [
    ({"question": "  "}, "blank"),
    ({"question": "tram", "k": 51}, "less than or equal to 50"),
    ({"question": "tram", "k": 0}, "greater than or equal to 1"),
    ({"question": "tram", "as_of": "next Tuesday"}, "unreadable date"),
    ({"question": "tram", "published_after": "2025-03-02", "published_before": "2025-03-01"},
     "published_after is later than published_before"),
    ({"question": "tram", "since": "2025-03-01"}, "Extra inputs are not permitted"),
])
def test_bad_input_is_refused_with_a_sentence(bad, says):
    with pytest.raises(ValidationError) as e:
        TimelineQuery(**bad)
    assert says in str(e.value)
