"""The extractive answer: the few retrieved sentences that best answer the question, cited.

Offline and fast (no model call): a sentence is scored by how much of the question's content it
covers, weighted by its passage's retrieval relevance, so the answer never says what the
passages do not. `ExtractiveGenerator` serves it as the offline generator and the fallback.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..retrieval.search import Hit
from ..text import STOPWORDS, content_stems, sentences, sentences_cached, stem, words

MAX_ANSWER_CHARS = 700
# Two sentences sharing most of their content words say the same thing; keep one.
DUPLICATE_OVERLAP = 0.6
# Sentence score = COVERAGE_WEIGHT * coverage + (1 - COVERAGE_WEIGHT) * passage relevance.
COVERAGE_WEIGHT = 0.6
MIN_SENTENCE_CHARS = 25
# Refuse when at least half of the question's names and numbers appear in no retrieved passage.
MAX_MISSING_NAMES = 0.5


@dataclass(frozen=True)
class DraftAnswer:
    text: str
    citations: list[int]
    answerable: bool
    generator: str = "extractive"


@dataclass(frozen=True)
class _Candidate:
    score: float
    rank: int
    position: int
    text: str
    stems: frozenset[str]
    coverage: float = 0.0


NOT_COVERED = "The articles do not cover this question."


def is_answerable(question: str, hits: list[Hit], min_relevance: float) -> bool:
    """Answerable when the best passage is close enough to the question (cosine floor) and the
    passages mention most of the names and numbers the question asks about.

    The second test catches near-topic questions ("How many tanks did Germany send?") that sit
    close to the articles in embedding space but name things no article mentions.
    """
    if not hits or max(h.relevance for h in hits) < min_relevance:
        return False
    names = named_terms(question)
    if not names:
        return True
    present = set().union(*(content_stems(h.chunk.text) for h in hits))  # cached per passage
    missing = [n for n in names if n not in present]
    return len(missing) / len(names) < MAX_MISSING_NAMES


def named_terms(question: str) -> list[str]:
    """Stems of the question's names and numbers: capitalised words after the first, and digits."""
    out = []
    for i, w in enumerate(words(question)):
        if w.lower() in STOPWORDS:
            continue
        if (i > 0 and w[:1].isupper()) or any(ch.isdigit() for ch in w):
            out.append(stem(w))
    return list(dict.fromkeys(out))


def extractive_answer(
    question: str, hits: list[Hit], min_relevance: float, max_sentences: int = 3,
    idf: Callable[[str], float] | None = None,
) -> DraftAnswer:
    """`idf(word)` weighs question words by rarity in the corpus (default: among the candidates)."""
    if not is_answerable(question, hits, min_relevance):
        return DraftAnswer(NOT_COVERED, [], answerable=False)
    chosen = _choose(_candidates(question, hits, idf), max_sentences)
    ordered = sorted(chosen, key=lambda c: (c.rank, c.position))
    text = " ".join(f"{_one_line(c.text)} [{c.rank}]" for c in ordered)
    return DraftAnswer(text, sorted({c.rank for c in ordered}), answerable=True)


def _candidates(question: str, hits: list[Hit], idf: Callable[[str], float] | None) -> list[_Candidate]:
    q_words = {stem(w): w for w in words(question) if w.lower() not in STOPWORDS}
    q = set(content_stems(question))
    raw = []
    for rank, hit in enumerate(hits, start=1):
        for pos, sent in enumerate(sentences_cached(hit.chunk.text)):
            if len(sent.text) >= MIN_SENTENCE_CHARS:
                raw.append((rank, pos, sent.text, frozenset(content_stems(sent.text)), hit.relevance))
    # A question word found in few places ("NATO") says more than one found everywhere ("Russia").
    if idf is not None:
        weight = {t: idf(q_words.get(t, t)) for t in q}
    else:
        weight = {t: math.log(1 + len(raw) / (1 + sum(t in r[3] for r in raw))) for t in q}
    total = sum(weight.values()) or 1.0
    out = []
    for rank, pos, text, stems, relevance in raw:
        coverage = sum(weight[t] for t in q & stems) / total
        score = COVERAGE_WEIGHT * coverage + (1 - COVERAGE_WEIGHT) * max(relevance, 0.0)
        out.append(_Candidate(score, rank, pos, text, stems, coverage))
    if any(c.coverage > 0 for c in out):  # a sentence sharing no question word answers nothing
        out = [c for c in out if c.coverage > 0]
    return sorted(out, key=lambda c: (-c.score, c.rank, c.position))


def _choose(cands: list[_Candidate], max_sentences: int) -> list[_Candidate]:
    chosen: list[_Candidate] = []
    length = 0
    for c in cands:
        if len(chosen) == max_sentences:
            break
        if any(_overlap(c.stems, o.stems) > DUPLICATE_OVERLAP for o in chosen):
            continue
        if chosen and length + len(c.text) > MAX_ANSWER_CHARS:
            continue
        chosen.append(c)
        length += len(c.text)
    return chosen


def _overlap(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / min(len(a), len(b)) if a and b else 0.0


def _one_line(text: str) -> str:
    return " ".join(text.split())


class ExtractiveGenerator:
    """The offline generator: the extractive answer streamed as one piece, and the fallback
    whenever an LLM generator fails; its `answerable` is the refusal test run before any generator."""

    name = "extractive"
    model: str | None = None

    def __init__(
        self, min_relevance: float, max_sentences: int = 3, idf: Callable[[str], float] | None = None
    ) -> None:
        self.min_relevance = min_relevance
        self.max_sentences = max_sentences
        self.idf = idf

    def answerable(self, question: str, hits: list[Hit]) -> bool:
        """The retrieval-side refusal test: are the passages close enough to answer at all?"""
        return is_answerable(question, hits, self.min_relevance)

    def text(self, question: str, hits: list[Hit]) -> str:
        return extractive_answer(question, hits, self.min_relevance, self.max_sentences, self.idf).text

    def stream(self, question: str, hits: list[Hit], choices: list[str] | None = None) -> Iterator[str]:
        """The extractive answer; choices are picked by rag/answering/choices.py, not here."""
        yield self.text(question, hits)
