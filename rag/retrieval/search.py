"""Find passages: dense (FAISS), lexical (FTS5 BM25) or both fused by reciprocal rank fusion.

Date limits (`Filters`) reach storage as one time range, met segment by segment (rag/storage/
segments.py); the way each part went is the search's plan, logged and returned on request. A time
the question itself names ("this week", rag/retrieval/timewindow.py) is a soft prior on ranking.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

import numpy as np

from .. import dates
from ..observe import stage
from ..config import RetrievalMode
from ..embedding.base import Embedder
from ..storage.index import Index
from ..storage.lexical import fts_query  # noqa: F401 - re-exported: part of retrieval's interface
from ..storage.store import ChunkRow, DocRow, Filters
from ..storage.timerange import Plan

from .rerank import RerankStatus, RerankUnavailable

if TYPE_CHECKING:
    from .rerank import Reranker

# RRF's k: 60 is the constant of Cormack et al. (2009); it flattens the head of each ranking so
# one list's first place cannot outvote agreement further down both lists.
RRF_K = 60
# Each ranking contributes this many candidates (x k, at least MIN) before fusion, so the
# per-article cap and duplicate folding still leave k passages.
CANDIDATE_FACTOR = 5
MIN_CANDIDATES = 50
# When FTS5 must scan a large index (a filtered search; rag/storage/lexical.py otherwise answers from
# bm25s), it leaves out words found in more than this share of chunks: FTS5 computes BM25 for
# every row a word matches, so "said" (43% of RealTime QA's 65k chunks) costs more than the rest
# of the query while its IDF is a fifth of a rare name's. Measured on RealTime QA (FTS5 alone):
# hit@5 0.732 -> 0.741, hit@10 unchanged, lexical time -30%.
COMMON_WORD_SHARE = 0.2
# Below this many chunks every word is kept: a search is a few ms anyway, and in a small corpus on
# one subject ("Russia" in most of five articles) a common word can still decide a ranking.
PRUNE_ABOVE_CHUNKS = 20_000
# Merged neighbours stop growing at this many chunks, so one passage stays a readable length.
MAX_MERGED_CHUNKS = 3
# Recency: an article this many days older than the as-of time counts half as recent (the
# default of RAG_RECENCY_HALF_LIFE_DAYS; the service passes the setting).
RECENCY_HALF_LIFE_DAYS = 30.0
# The time the question names ranks as a prior of this weight against relevance: an article inside
# the window gains it in full, one outside by 0.5^(days outside / window length). Strong enough to
# lift an in-window article past a slightly better-matching older one, too weak to lift an
# unrelated article over a clear match: questions say "this week" loosely.
WINDOW_WEIGHT = 0.3

log = logging.getLogger("rag.retrieval")


@dataclass
class Hit:
    chunk: ChunkRow  # a stored chunk, or adjacent chunks of one article merged into one span
    score: float  # what ranks the list (cosine, BM25 or RRF, by mode; recency folded in)
    relevance: float  # cosine of question and chunk: comparable across modes, used for refusal
    also_in: list[str] = field(default_factory=list)  # near-duplicate articles telling the same story


@dataclass
class _Group:
    """A passage being assembled: its best chunk's hit, and the span its merged chunks cover
    (the text is read once, when the passage is final)."""

    doc: DocRow
    hit: Hit
    first: int  # ordinals covered, inclusive
    last: int
    start: int  # character span covered
    end: int
    relevance: float

    @classmethod
    def of(cls, doc: DocRow, hit: Hit) -> "_Group":
        c = hit.chunk
        return cls(doc, hit, c.ordinal, c.ordinal, c.start, c.end, hit.relevance)

    def absorb(self, other: "_Group") -> None:
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        self.start, self.end = min(self.start, other.start), max(self.end, other.end)
        self.relevance = max(self.relevance, other.relevance)


class Retriever:
    def __init__(
        self, index: Index, embedder: Embedder, max_per_doc: int = 2,
        reranker: "Reranker | None" = None, rerank_candidates: int = 20,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.max_per_doc = max_per_doc
        self.reranker = reranker
        self.rerank_candidates = rerank_candidates

    def search(
        self, question: str, k: int, mode: RetrievalMode = RetrievalMode.hybrid,
        filters: Filters | None = None, recency: float = 0.0, as_of: datetime | None = None,
        half_life_days: float = RECENCY_HALF_LIFE_DAYS, rerank_status: RerankStatus | None = None,
        window: tuple[datetime, datetime] | None = None, plan: Plan | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The k best passages. `recency` > 0 blends in how recent each article is, by its age
        at `as_of` (default now); `filters.as_of` is what leaves later articles out. `window`
        (start, end): the time the question names, preferred softly (WINDOW_WEIGHT).
        `rerank_status` is told whether the reranker re-ordered them or why it could not; `plan`
        how the date limit was met in each segment and in the word index. `vector`: the
        question's embedding by this model, when the caller keeps it (standing questions do)."""
        if vector is not None:
            qvec = np.asarray(vector, dtype=np.float32)
        else:
            with stage("embed"):
                qvec = self.embedder.encode([question])[0]
        plan = plan if plan is not None else Plan()
        ranked = self._candidates(question, qvec, max(MIN_CANDIDATES, k * CANDIDATE_FACTOR), mode, filters, plan)
        log.debug("search plan: %s", plan.as_dict())
        docs = self.index.store.documents_by_id(c.doc_id for c, _ in ranked)
        ranked = [(c, s) for c, s in ranked if c.doc_id in docs and (not filters or filters.admits(docs[c.doc_id]))]
        if self.reranker is not None:
            with stage("rerank"):
                ranked = self._rerank(question, ranked, docs, rerank_status or RerankStatus())
        if recency > 0:
            when = as_of or datetime.now(timezone.utc)
            ranked = _prefer_recent(ranked, docs, recency, when, half_life_days)
        if window is not None:
            ranked = _prefer_window(ranked, docs, window)
        hits = self._select(self._with_relevance(ranked, qvec), docs, k)
        members = self.index.store.story_members(docs[h.chunk.doc_id].story for h in hits)
        for h in hits:
            h.also_in = [d for d in members.get(docs[h.chunk.doc_id].story, []) if d != h.chunk.doc_id]
        return hits

    def _candidates(
        self, question: str, qvec: np.ndarray, n: int, mode: RetrievalMode, filters: Filters | None,
        plan: Plan | None = None,
    ) -> list[tuple[ChunkRow, float]]:
        # Dates are met in memory, segment by segment; only source and article limits ask SQL for ids.
        within = filters.within() if filters else None
        allowed = self.index.store.filtered_vids(filters) if filters and filters.needs_sql else None
        if mode is RetrievalMode.dense:
            with stage("vector_search"):
                return self.index.search(qvec, n, allowed, within, plan)
        lexical = self._lexical(question, n, filters, plan)
        if mode is RetrievalMode.lexical:
            return lexical
        with stage("vector_search"):
            dense = self.index.search(qvec, n, allowed, within, plan)
        with stage("fuse"):
            chunks = {c.vid: c for c, _ in dense + lexical}
            fused = rrf([[c.vid for c, _ in dense], [c.vid for c, _ in lexical]])
        return [(chunks[vid], score) for vid, score in fused]

    def _rerank(
        self, question: str, ranked: list[tuple[ChunkRow, float]], docs: dict[str, DocRow],
        status: RerankStatus | None = None,
    ) -> list[tuple[ChunkRow, float]]:
        """Re-order the head of the list by the reranker, fused with the first-stage rank (RRF),
        so a reranker's occasional miss cannot bury what both retrievers agreed on. A reranking
        server that cannot answer leaves the first-stage ranking, noted in `status`."""
        head, tail = ranked[: self.rerank_candidates], ranked[self.rerank_candidates :]
        assert self.reranker is not None
        status = status or RerankStatus()
        try:
            scores = self.reranker.scores(question, [c for c, _ in head], [docs[c.doc_id].title for c, _ in head])
        except RerankUnavailable as exc:
            status.used, status.error = False, str(exc)
            return ranked
        status.used, status.error = True, None
        by_rerank = [i for i, _ in sorted(enumerate(scores), key=lambda p: -p[1])]
        fused = rrf([list(range(len(head))), by_rerank])
        return [(head[i][0], s) for i, s in fused] + [(c, 0.0) for c, _ in tail]

    def _lexical(
        self, question: str, n: int, filters: Filters | None, plan: Plan | None = None
    ) -> list[tuple[ChunkRow, float]]:
        with stage("word_search"):
            hits = self.index.lexical.search(question, n, filters, self._keep_term, plan)
            rows = self.index.store.chunks_by_vid([vid for vid, _ in hits])
        return [(rows[vid], s) for vid, s in hits if vid in rows]

    def _keep_term(self, term: str) -> bool:
        stats = self.index.term_stats()
        return stats.chunks <= PRUNE_ABOVE_CHUNKS or stats.doc_freq(term) <= COMMON_WORD_SHARE * stats.chunks

    def _with_relevance(self, ranked: list[tuple[ChunkRow, float]], qvec: np.ndarray) -> list[Hit]:
        # A chunk the word index found but this snapshot's vectors do not hold yet (committed a
        # moment ago) waits for the next query rather than failing this one.
        vecs = self.index.vectors_present([c.vid for c, _ in ranked])
        return [Hit(c, s, float(vecs[c.vid] @ qvec)) for c, s in ranked if c.vid in vecs]

    def _select(self, hits: list[Hit], docs: dict[str, DocRow], k: int) -> list[Hit]:
        """Best first, at most `max_per_doc` passages an article, one copy of a story, and
        neighbouring chunks of one article merged into one passage. The cap spreads the head of
        the list over articles; when too few articles are left to fill k, the best of the capped
        passages follow after them rather than the result coming back short."""
        groups: list[_Group] = []
        story_doc: dict[str, str] = {}
        capped: list[Hit] = []
        for hit in hits:
            if len(groups) == k:
                break
            doc = docs[hit.chunk.doc_id]
            if story_doc.setdefault(doc.story, doc.id) != doc.id:
                continue  # another copy of a story already shown; listed in `also_in`
            if not self._place(hit, doc, groups, self.max_per_doc):
                capped.append(hit)
        for hit in capped:
            if len(groups) == k:
                break
            self._place(hit, docs[hit.chunk.doc_id], groups, k)
        return [self._passage(g) for g in groups]

    def _place(self, hit: Hit, doc: DocRow, groups: list[_Group], cap: int) -> bool:
        """Merge `hit` into a neighbouring passage of its article or start a passage; False when
        the article already has `cap` passages."""
        mine = [g for g in groups if g.doc.id == doc.id]
        new = _Group.of(doc, hit)
        near = next((g for g in mine if _touch(g, new)), None)
        if near is not None:
            if _fits(near, new):
                near.absorb(new)
                _coalesce(near, mine, groups)
            return True
        if len(mine) >= cap:
            return False
        groups.append(new)
        return True

    def _passage(self, group: _Group) -> Hit:
        """The group's hit, its chunk widened to the merged span (text read once, here)."""
        c = group.hit.chunk
        if (group.start, group.end) == (c.start, c.end):
            return group.hit
        text = self.index.store.span(c.doc_id, group.start, group.end)
        merged = ChunkRow(c.vid, c.doc_id, group.first, group.start, group.end, text, group.last)
        return Hit(merged, group.hit.score, group.relevance)


def _touch(a: _Group, b: _Group) -> bool:
    """Do two passages of one article border or overlap?"""
    return a.first - 1 <= b.last and b.first - 1 <= a.last


def _fits(a: _Group, b: _Group) -> bool:
    """Would the two, joined, stay within MAX_MERGED_CHUNKS?"""
    return max(a.last, b.last) - min(a.first, b.first) < MAX_MERGED_CHUNKS


def _coalesce(grown: _Group, mine: list[_Group], groups: list[_Group]) -> None:
    """A passage that grew to border another of its article becomes one with it (if the two stay
    within MAX_MERGED_CHUNKS), kept at the better-ranked one's place."""
    for other in mine:
        if other is not grown and _touch(grown, other) and _fits(grown, other):
            keep, gone = sorted((grown, other), key=groups.index)
            keep.absorb(gone)
            groups.remove(gone)
            return


def _prefer_recent(
    ranked: list[tuple[ChunkRow, float]], docs: dict[str, DocRow], weight: float, as_of: datetime,
    half_life_days: float = RECENCY_HALF_LIFE_DAYS,
) -> list[tuple[ChunkRow, float]]:
    """Blend the normalised score with recency: (1 - w) * score/top + w * 0.5^(age/half-life),
    the age in days at `as_of` (0 for anything later). An undated article gets the candidates'
    mean recency (neither new nor old); with no dated candidate the ranking is left as it is."""
    when = {d.id: dates.instant(d.published) for d in docs.values()}
    recency = {
        doc_id: math.pow(0.5, max(0.0, (as_of - t).total_seconds() / 86400) / half_life_days)
        for doc_id, t in when.items() if t is not None
    }
    return _blend(ranked, recency, weight)


def _prefer_window(
    ranked: list[tuple[ChunkRow, float]], docs: dict[str, DocRow], window: tuple[datetime, datetime],
    weight: float = WINDOW_WEIGHT,
) -> list[tuple[ChunkRow, float]]:
    """Blend the normalised score with closeness to the window the question names:
    (1 - w) * score/top + w * 0.5^(days outside the window / its length in days, at least 1).
    An undated article gets the candidates' mean closeness; with none dated the ranking stays."""
    start, end = window
    length = max(1.0, (end - start).total_seconds() / 86400)
    close = {}
    for d in docs.values():
        t = dates.instant(d.published)
        if t is not None:
            outside = max(0.0, (start - t).total_seconds(), (t - end).total_seconds()) / 86400
            close[d.id] = math.pow(0.5, outside / length)
    return _blend(ranked, close, weight)


def _blend(ranked: list[tuple[ChunkRow, float]], prior: dict[str, float], weight: float) -> list[tuple[ChunkRow, float]]:
    """(1 - w) * score/top + w * the article's prior; an article without one (undated) gets the
    candidates' mean prior, and with no prior at all the ranking is left as it is."""
    if not prior:
        return ranked
    undated = math.fsum(prior.values()) / len(prior)
    top = max((s for _, s in ranked), default=1.0) or 1.0
    blended = [(c, (1 - weight) * s / top + weight * prior.get(c.doc_id, undated)) for c, s in ranked]
    return sorted(blended, key=lambda cs: -cs[1])


def rrf(rankings: list[list[int]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1.

    A tie (ranks 1 and 2 against 2 and 1 is common) goes to the better rank in the first ranking,
    then the second, ...: an order the rankings fix, not the ids, which follow the order articles
    were ingested in."""
    scores: dict[int, float] = {}
    ranks: dict[int, list[float]] = {}
    for nth, ranking in enumerate(rankings):
        for rank, item in enumerate(ranking, start=1):
            scores[item] = scores.get(item, 0.0) + 1.0 / (k + rank)
            ranks.setdefault(item, [math.inf] * len(rankings))[nth] = rank
    return sorted(scores.items(), key=lambda kv: (-kv[1], ranks[kv[0]]))
