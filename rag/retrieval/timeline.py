"""Story timelines: the articles a search found for a question, grouped into events, oldest first.

The story is the articles whose relevance comes near the best one's (STORY_SHARE). Each is read
through its key sentence: the sentence of its retrieved passages closest to the question (cosine,
the index's own embedder). An event is one development of the story: dated articles are taken
oldest first, and an article joins the event holding the key sentence most like its own (cosine
at least SAME_EVENT), among the events that began at most EVENT_DAYS days before it; else it
begins an event of its own. So an event is dated by its first article, spans at most
EVENT_DAYS + 1 calendar days, and its key sentence is the one of its articles closest to the
question. Republished copies are already folded by the search (`also_in`); undated articles
cannot be placed on a timeline and are handed back apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import numpy as np

from .. import dates
from ..embedding.base import Embedder
from ..storage.store import DocRow
from ..text import content_stems, sentences
from .search import Hit

# A timeline tells one story: an article stays on it when its relevance (cosine of the question and
# its best passage) is at least this share of the best article's; below, it is another story the
# search also found. On the 72 RealTime QA quiz questions that eval/bench_timeline.py does not
# sample, 0.6 kept the gold article on 70 of the 71 timelines that had it and left out over half
# of the other articles (15.1 to 6.9 a timeline, mostly the week's other stories); 0.7 lost three
# more gold articles.
STORY_SHARE = 0.6
# Reports of one development reach a collection over a day or two (time zones, the next morning's
# follow-ups), while the next development of a story is days or weeks later: an event takes
# articles published up to this many days after its first.
EVENT_DAYS = 2
# Cosine (all-MiniLM-L6-v2) of two articles' key sentences at or above which they report the same
# development. On pairs of on-story articles published within two days of each other (the same
# held-out questions), pairs at 0.65 and above were nearly all two reports of one thing (an
# announcement, a vote, a death); from about 0.6 down, mostly two aspects of one story (a deal and
# the doubts about it, two price figures). Restatements in other words (rag/retrieval/novelty.py)
# score 0.85 and above.
SAME_EVENT = 0.65
# Shorter "sentences" are datelines and captions ("CNN —", "Photo: Reuters."), never the key.
MIN_SENTENCE_CHARS = 25
# The embedder reads at most this many sentences an article: those sharing the most content words
# with the question (earlier first on ties, where news puts what happened). Embedding every
# sentence of a three-chunk passage cost most of a timeline's time; the key sentence names what
# the question asks about anyway.
KEY_CANDIDATES = 8


@dataclass(frozen=True)
class Cited:
    """One sentence of an article, at its exact offsets in the article's text."""

    doc_id: str
    start: int
    end: int
    text: str
    score: float  # cosine with the question


@dataclass
class Article:
    """An article the search found: its document row, its first passage, its relevance and its
    key sentence (None for undated articles, which are not read)."""

    doc: DocRow
    hit: Hit
    relevance: float  # of its best passage
    key: Cited | None = None
    vec: np.ndarray | None = field(default=None, repr=False)

    @property
    def day(self) -> date | None:
        found = dates.day(self.doc.published)
        return date.fromisoformat(found) if found else None


@dataclass
class Event:
    """Articles on one development, oldest first; dated by the first, cited by `key`."""

    articles: list[Article]
    key: Cited

    @property
    def day(self) -> date:
        day = self.articles[0].day
        assert day is not None
        return day


def build(question: str, hits: list[Hit], docs: dict[str, DocRow], embedder: Embedder) -> tuple[list[Event], list[Article]]:
    """(the events, oldest first; the undated articles, in the search's order). `hits` in the
    search's order: an article's first hit is its passage, the later ones add sentences."""
    articles: dict[str, Article] = {}
    passages: dict[str, list[Hit]] = {}
    for h in hits:
        doc = docs.get(h.chunk.doc_id)
        if doc is None:
            continue
        a = articles.setdefault(doc.id, Article(doc, h, h.relevance))
        a.relevance = max(a.relevance, h.relevance)
        passages.setdefault(doc.id, []).append(h)
    if not articles:
        return [], []
    best = max(a.relevance for a in articles.values())
    story = [a for a in articles.values() if a.relevance >= STORY_SHARE * best]
    dated = [a for a in story if a.day is not None]
    undated = [a for a in story if a.day is None]
    if not dated:
        return [], undated
    _read_key_sentences(question, dated, passages, embedder)
    dated.sort(key=lambda a: (dates.instant(a.doc.published), a.doc.id))
    events: list[Event] = []
    for a in dated:
        best, best_sim = None, SAME_EVENT
        for e in events:
            if (a.day - e.day).days > EVENT_DAYS:  # type: ignore[operator]
                continue
            sim = max(float(a.vec @ m.vec) for m in e.articles)  # type: ignore[operator]
            if sim >= best_sim:
                best, best_sim = e, sim
        if best is None:
            events.append(Event([a], a.key))  # type: ignore[arg-type]
        else:
            best.articles.append(a)
            if a.key.score > best.key.score:  # type: ignore[union-attr]
                best.key = a.key  # type: ignore[assignment]
    return events, undated


def _read_key_sentences(question: str, articles: list[Article], passages: dict[str, list[Hit]], embedder: Embedder) -> None:
    """Give each article its key sentence and that sentence's vector (one encode for all)."""
    found: list[tuple[Article, Cited]] = []
    asked = set(content_stems(question))
    for a in articles:
        seen: set[tuple[int, int]] = set()
        mine = []
        for h in passages[a.doc.id]:
            for s in sentences(h.chunk.text):
                span = (h.chunk.start + s.start, h.chunk.start + s.end)
                if span not in seen:  # overlapping passages of one article repeat sentences
                    seen.add(span)
                    mine.append(Cited(a.doc.id, span[0], span[1], s.text, 0.0))
        long_enough = [c for c in mine if len(c.text) >= MIN_SENTENCE_CHARS] or mine
        long_enough.sort(key=lambda c: (-len(asked.intersection(content_stems(c.text))), c.start))
        found += [(a, c) for c in long_enough[:KEY_CANDIDATES]]
    vecs = np.asarray(embedder.encode([question] + [c.text for _, c in found]), dtype=np.float32)
    qvec, svecs = vecs[0], vecs[1:]
    scores = svecs @ qvec
    for i, (a, c) in enumerate(found):
        if a.key is None or scores[i] > a.key.score:
            a.key = Cited(c.doc_id, c.start, c.end, c.text, round(float(scores[i]), 6))
            a.vec = svecs[i]
