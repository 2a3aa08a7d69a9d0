"""One object that answers questions and manages documents; HTTP, CLI and eval all use it."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import dates
from .answering import Delta, Retrieved, draft, draft_choice, extractive_from, is_answerable, pick_generator
from .config import RetrievalMode, Settings
from .embedding import Embedder, cpu_class, load_embedder
from .ingestion import Document, load_path
from .ingestion.chunking import chunker_for
from .ingestion.pipeline import IngestReport, Ingestor, ProgressFn, RemoteEmbedding
from .ingestion.fetch import Fetcher, FetchPolicy
from .ingestion.watcher import EventFn, FeedState, Watcher
from .ingestion.web import UrlDocuments, read_url
from .retrieval import Hit, Retriever, load_reranker
from .retrieval import novelty, timeline
from .retrieval.rerank import RerankStatus
from .retrieval.timewindow import TimeWindow
from .retrieval.timewindow import resolve as resolve_window
from .schema import (
    CitedSentence, DocumentOut, DocumentSummary, FeedStatus, Health, Passage, Query, QueryResponse, RerankOut,
    SearchPlanOut, TimelineArticle, TimelineEvent, TimelineQuery, TimelineResponse, TimeWindowOut,
)
from .storage import DocRow, Filters, Index, IndexPolicy, Maintainer, Manifest, Store
from .storage.timerange import Plan
from .watches import Watches

class Service:
    def __init__(self, settings: Settings, embedder: Embedder | None = None, rebuild: bool = False) -> None:
        self.settings = settings
        self.embedder = embedder or load_embedder(
            settings.embed_model, settings.embed_backend, settings.cache_dir, settings
        )
        ident = self.embedder.identity
        self.chunker = chunker_for(self.embedder, settings.chunk_tokens, settings.chunk_overlap)
        self.manifest = Manifest(
            model_name=ident.name, model_sha256=ident.weights_sha256, backend=ident.backend, dim=ident.dim,
            chunker=self.chunker.settings(), export_sha256=ident.export_sha256, runtime=ident.runtime,
            cpu_classes=[cpu_class()],
        )
        self.index = Index.open(
            settings.index_dir, self.manifest, rebuild=rebuild, policy=IndexPolicy.from_settings(settings),
            merge_factor=settings.merge_factor, max_segment_vectors=settings.max_segment_vectors,
        )
        self.retriever = Retriever(
            self.index, self.embedder, settings.max_per_doc, load_reranker(settings, self.embedder), settings.rerank_candidates
        )
        self.ingestor = Ingestor(self.index, self.embedder, self.chunker, settings.embed_batch_size, settings.commit_chunks)
        self.watcher: Watcher | None = None
        self.maintainer: Maintainer | None = None
        self.watches = Watches(self)  # standing questions, evaluated after each ingest

    # --- questions ---------------------------------------------------------------------------
    def ask(
        self, query: Query, mode: RetrievalMode | None = None, on_event: Callable[[Retrieved | Delta], None] | None = None,
        *, vector: np.ndarray | None = None,
    ) -> QueryResponse:
        """Passages and a verified answer (rag/answering/drafting.py). `on_event`, for streaming, gets the
        passages first, then each piece of the draft as it is generated. `vector`: the question's
        embedding, when the caller keeps it (a standing question's, asked again at each commit).

        As of `query.as_of` (default now): later articles are left out, undated ones follow
        `include_undated` (the one rule of rag/dates.py), and recency is measured from it; a time
        the question names is preferred softly (`time_window`); `choices` adds the
        multiple-choice answer (rag/answering/choices.py)."""
        cut = dates.cutoff(query.as_of or datetime.now(timezone.utc))
        filters = _filters(query, cut, tuple(query.doc_ids) if query.doc_ids is not None else None)
        mode = mode or query.mode or self.settings.retrieval_mode
        recency = self.settings.recency if query.recency is None else query.recency
        rerank, plan = RerankStatus(), Plan()
        window = self._time_window(query, cut)
        earlier = None
        if query.since is not None:  # only what articles from `since` on add (rag/retrieval/novelty.py)
            filters, earlier = novelty.split(filters, query.since)
        hits = self.retriever.search(
            query.question, query.k, mode, filters, recency, dates.cutoff_instant(cut),
            self.settings.recency_half_life_days, rerank, (window.start, window.end) if window else None, plan,
            vector=vector,
        )
        updates: dict[str, str] = {}
        if earlier is not None:
            before = self.retriever.search(
                query.question, 2 * query.k, mode, earlier, recency, dates.cutoff_instant(cut),
                self.settings.recency_half_life_days, RerankStatus(), None, Plan(),
            )
            hits, updates = novelty.whats_new(hits, before, self.embedder)
        passages = self._passages(hits, updates)
        if on_event is not None:
            on_event(Retrieved(passages))
        extractive = extractive_from(self.settings, self._idf)
        generator = pick_generator(self.settings, query.generator, self._idf) if query.answer or query.choices else None
        if query.answer and generator is not None:
            answer, answerable = draft(query.question, hits, generator, extractive, on_event)
        else:
            answer, answerable = None, extractive.answerable(query.question, hits)
        choice = None
        if query.choices and generator is not None:
            choice = draft_choice(query.question, query.choices, hits, generator, self._idf)
        return QueryResponse(
            question=query.question, answerable=answerable, answer=answer, passages=passages, choice=choice,
            rerank=RerankOut(used=rerank.used, error=rerank.error) if self.retriever.reranker is not None else None,
            time_window=TimeWindowOut(start=window.start, end=window.end, words=window.words) if window else None,
            debug=SearchPlanOut(**plan.as_dict()) if query.debug else None,
        )

    def timeline(self, query: TimelineQuery) -> TimelineResponse:
        """The story of a question as of `query.as_of` (default now): the articles the search finds,
        under /query's relevance rules, grouped into dated events, oldest first
        (rag/retrieval/timeline.py). Undated articles are listed apart.

        The ranking has no recency prior and no named-time prior: a timeline wants the story's
        beginning as much as its latest turn (published_after / published_before bound it)."""
        cut = dates.cutoff(query.as_of or datetime.now(timezone.utc))
        mode = query.mode or self.settings.retrieval_mode
        hits = self.retriever.search(query.question, query.k, mode, _filters(query, cut), 0.0, dates.cutoff_instant(cut))
        # Each article must pass the floor a question's best passage must pass on /query.
        hits = [h for h in hits if h.relevance >= self.settings.min_relevance]
        if not is_answerable(query.question, hits, self.settings.min_relevance):
            return TimelineResponse(question=query.question, answerable=False, events=[], undated=[])
        docs = self.index.store.documents_by_id(h.chunk.doc_id for h in hits)
        events, undated = timeline.build(query.question, hits, docs, self.embedder)
        return TimelineResponse(
            question=query.question, answerable=True,
            events=[
                TimelineEvent(
                    date=e.day, sentence=_cited(e.key, docs[e.key.doc_id]), articles=[_article(a) for a in e.articles]
                )
                for e in events
            ],
            undated=[_article(a) for a in undated],
        )

    @staticmethod
    def _time_window(query: Query, cut: str) -> TimeWindow | None:
        """The time the question names, unless the query turned it off or gave explicit dates."""
        if not query.time_window or query.published_after or query.published_before:
            return None
        return resolve_window(query.question, datetime.fromtimestamp(dates.last_second(cut), timezone.utc))

    def _passages(self, hits: list[Hit], updates: dict[str, str] | None = None) -> list[Passage]:
        docs = self.index.store.documents_by_id(h.chunk.doc_id for h in hits)
        out = []
        for rank, h in enumerate((h for h in hits if h.chunk.doc_id in docs), start=1):
            d = docs[h.chunk.doc_id]
            out.append(
                Passage(
                    rank=rank, score=round(h.score, 6), doc_id=d.id, chunk_id=h.chunk.chunk_id, title=d.title,
                    source=d.source, published=d.published, start=h.chunk.start, end=h.chunk.end, text=h.chunk.text,
                    also_in=h.also_in, updates=(updates or {}).get(h.chunk.chunk_id),
                )
            )
        return out

    def _idf(self, word: str) -> float:
        """log(1 + N / (1 + df)) over the chunks of the index, cached per committed generation."""
        stats = self.index.term_stats()
        return math.log(1 + stats.chunks / (1 + stats.doc_freq(word)))

    # --- documents ---------------------------------------------------------------------------
    def documents(self) -> list[DocumentSummary]:
        return [_summary(d) for d in self.index.store.documents()]

    def document(self, doc_id: str) -> DocumentOut | None:
        found = self.index.store.document(doc_id)
        if found is None:
            return None
        row, text = found
        return DocumentOut(**_summary(row).model_dump(), text=text)

    def health(self) -> Health:
        docs, chunks = self.index.store.counts()
        feeds = None if self.watcher is None else [_feed_status(s) for s in self.watcher.statuses()]
        return Health(documents=docs, chunks=chunks, model=self.embedder.identity.name, feeds=feeds)

    def ingest(
        self, docs: Iterable[Document], rebuild: bool = False, on_progress: ProgressFn | None = None,
        remote: RemoteEmbedding | None = None,
    ) -> IngestReport:
        """Add, replace or skip documents (chunked and embedded by `remote` when given, e.g. a Ray
        cluster); then, unless a background maintainer runs, merge segments and refresh the word
        index as the ingest left them."""
        report = self.ingestor.ingest(docs, rebuild=rebuild, on_progress=on_progress, remote=remote)
        if self.maintainer is None:
            report.merges = len(self.maintain())
        if not rebuild:  # a rebuild re-embeds the same texts: nothing new to tell
            self.watches.committed(d for d in report.added + report.replaced if d not in report.metadata_only)
        return report

    def ingest_paths(self, paths: list[Path], rebuild: bool = False, on_progress: ProgressFn | None = None) -> IngestReport:
        return self.ingest((d for p in paths for d in load_path(p)), rebuild=rebuild, on_progress=on_progress)

    def delete(self, doc_ids: list[str]) -> list[str]:
        found = self.ingestor.delete(doc_ids)
        if self.maintainer is None:
            self.maintain()
        return found

    # --- upkeep ------------------------------------------------------------------------------
    def maintain(self) -> list[dict]:
        """Merge segments while the merge policy asks for it and refresh the word index's base;
        one dict per merge done."""
        return self.index.maintain()

    def start_maintenance(self) -> "Maintainer":
        """Merge in a background thread every RAG_MERGE_INTERVAL_S (`rag serve`), so no request
        waits for a merge."""
        if self.maintainer is None:
            self.maintainer = Maintainer(self.index, self.settings.merge_interval_s)
            self.maintainer.start()
        return self.maintainer

    def stop_maintenance(self, timeout: float | None = None) -> None:
        if self.maintainer is not None:
            self.maintainer.stop(timeout)
            self.maintainer = None

    # --- the web: pages, feeds, and watching them ------------------------------------------
    def read_urls(self, urls: list[str]) -> list[UrlDocuments]:
        """The articles at each URL (a page, or a feed's entries), fetched under RAG_FETCH_*."""
        with Fetcher(FetchPolicy.from_settings(self.settings)) as fetcher:
            return [read_url(u, fetcher) for u in urls]

    def watch(self, feeds: list[str], every_s: float | None = None, on_event: EventFn | None = None) -> Watcher:
        """A watcher of `feeds` ingesting into this index (its state kept in the index);
        `poll_once()` it, or `start()` it in the background. `close()` stops it."""
        self.stop_watching()
        fetcher = Fetcher(FetchPolicy.from_settings(self.settings))
        every = self.settings.feed_every_s if every_s is None else every_s
        self.watcher = Watcher(feeds, self.index.store, fetcher, lambda docs: self.ingest(docs), every, on_event)
        return self.watcher

    def start_watching(self, on_event: EventFn | None = None) -> Watcher | None:
        """Poll RAG_FEEDS in a background thread, if any are set."""
        if not self.settings.feed_urls:
            return None
        watcher = self.watch(self.settings.feed_urls, on_event=on_event)
        watcher.start()
        return watcher

    def stop_watching(self, timeout: float | None = None) -> None:
        if self.watcher is not None:
            self.watcher.stop(timeout)
            self.watcher.fetcher.close()
            self.watcher = None

    # --- the shipped corpus ------------------------------------------------------------------
    def seed_if_needed(self, on_progress: ProgressFn | None = None) -> IngestReport | None:
        """Ingest `seeds/` when the index is empty or the seed files changed since last time.

        Unchanged seeds are left alone, so a seed article deleted through the API stays deleted.
        """
        folder = self.settings.seeds_dir
        if not folder.is_dir():
            return None
        docs = list(load_path(folder))
        fingerprint = hashlib.sha256("".join(sorted(d.id + d.content_hash for d in docs)).encode()).hexdigest()
        empty = self.index.store.counts()[0] == 0
        if not empty and self.index.store.meta("seeds_fingerprint") == fingerprint:
            return None
        report = self.ingest(docs, on_progress=on_progress)
        Store.set_meta(self.index.store.connect(), "seeds_fingerprint", fingerprint)
        return report

    def close(self) -> None:
        self.stop_watching()
        self.stop_maintenance()
        self.watches.close()
        self.index.close()


def _filters(query: Query | TimelineQuery, cut: str, doc_ids: tuple[str, ...] | None = None) -> Filters:
    """The limits a question is asked under: source, articles, dates, and nothing after `cut`."""
    return Filters(
        source=query.source,
        doc_ids=doc_ids,
        published_after=query.published_after.isoformat() if query.published_after else None,
        published_before=query.published_before.isoformat() if query.published_before else None,
        include_undated=query.include_undated,
        as_of=cut,
    )


def _cited(c: timeline.Cited, d: DocRow) -> CitedSentence:
    return CitedSentence(
        doc_id=c.doc_id, start=c.start, end=c.end, text=c.text, title=d.title, source=d.source, published=d.published
    )


def _article(a: timeline.Article) -> TimelineArticle:
    d = a.doc
    return TimelineArticle(
        doc_id=d.id, title=d.title, source=d.source, published=d.published, relevance=round(a.relevance, 6),
        also_in=a.hit.also_in,
    )


def _feed_status(s: FeedState) -> FeedStatus:
    return FeedStatus(
        url=s.url, last_poll=s.last_poll, last_success=s.last_success, error=s.error, failures=s.failures,
        articles=sum(1 for p in s.pages.values() if p.error is None),
    )


def _summary(d: DocRow) -> DocumentSummary:
    return DocumentSummary(
        id=d.id, title=d.title, source=d.source, published=d.published, author=d.author, chunks=d.chunk_count
    )
