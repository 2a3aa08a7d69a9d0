"""load -> chunk -> embed -> commit, idempotent by content hash.

A document whose text and title are as stored but whose source or date changed is updated in
place: its chunks, vectors and word index depend on neither, so nothing is re-chunked or
re-embedded. A changed title changes what is embedded (`rag.text.context_text`): re-embedded.
"""

from __future__ import annotations

import bisect
import dataclasses
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from . import dedup
from .. import observe
from ..config import COMMIT_CHUNKS
from ..text import context_text
from .chunking import Chunk, Chunker
from .documents import Document
from ..embedding.base import Embedder
from ..storage.index import Batch, Index, PendingDoc
from ..storage.store import ChunkRow, DocRow

ProgressFn = Callable[[int], None]  # called with the number of documents processed so far

ENCODE_SLICE = 256  # chunks per encode call: progress granularity and bounded peak memory


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    replaced: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Of `replaced`: those whose source or date alone changed (updated in place, nothing embedded).
    metadata_only: list[str] = field(default_factory=list)
    chunk_counts: dict[str, int] = field(default_factory=dict)  # documents chunked and embedded
    seconds: float = 0.0
    merges: int = 0  # segment merges run after the ingest (rag.service)

    @property
    def chunks(self) -> int:
        return sum(self.chunk_counts.values())


Embedded = tuple[Document, list[Chunk], np.ndarray]


class RemoteEmbedding(Protocol):
    """Chunks and embeds documents elsewhere (a Ray cluster: rag/cluster) and streams them back,
    each document whole, for this process to commit as the single writer."""

    def run(self, docs: list[Document], model: str) -> Iterator[Embedded]:
        """Each document with its chunks and vectors; `model` is the index's model identity
        (`model_identity`), which the vectors must come from."""
        ...


def model_identity(name: str, sha256: str, backend: str, export_sha256: str = "", runtime: str = "") -> str:
    """One string that names a model's vectors: two embedders match when their strings do (the
    export and runtime too: the same weights through another ONNX file or release differ)."""
    maker = f"/export {export_sha256[:16]} on {runtime}" if export_sha256 or runtime else ""
    return f"{name}@{sha256[:16]}/{backend}{maker}"


@dataclass
class _Staged:
    docs: dict[str, tuple[Document, list[Chunk], np.ndarray | None]] = field(default_factory=dict)

    def put(self, doc: Document, chunks: list[Chunk], vectors: np.ndarray | None = None) -> None:
        self.docs.pop(doc.id, None)  # the same id twice in one input: the later one wins
        self.docs[doc.id] = (doc, chunks, vectors)

    @property
    def chunks(self) -> int:
        return sum(len(c) for _, c, _ in self.docs.values())


class Ingestor:
    def __init__(
        self, index: Index, embedder: Embedder, chunker: Chunker, batch_size: int = 64, commit_chunks: int = COMMIT_CHUNKS,
    ) -> None:
        self.index = index
        self.commit_chunks = commit_chunks
        self.embedder = embedder
        self.chunker = chunker
        self.batch_size = batch_size
        self._dups: dedup.DuplicateFinder | None = None

    def ingest(
        self, docs: Iterable[Document], rebuild: bool = False, on_progress: ProgressFn | None = None,
        remote: RemoteEmbedding | None = None,
    ) -> IngestReport:
        """Add new documents, replace changed ones, skip unchanged ones.

        With `rebuild`, every stored document is re-chunked and re-embedded too, and all of it is
        committed at once, so a crash mid-rebuild leaves the old index whole. With `remote`, the
        documents to embed are chunked and embedded there, and committed here as they stream back.
        """
        t0 = time.perf_counter()
        report = IngestReport()
        progress = _Progress(on_progress)
        with self.index.writer():
            known = self.index.store.hashes()
            staged = _Staged()
            metadata: dict[str, DocRow] = {}  # id -> the stored row with its new source and date
            shipped: dict[str, Document] = {}  # for `remote`, in input order
            if rebuild:
                for row, text in self.index.store.all_documents_text():
                    doc = Document(row.id, text, row.title, row.source, row.published, author=row.author)
                    if remote is not None:
                        shipped[doc.id] = doc
                    else:
                        staged.put(doc, self.chunker.split(doc.id, doc.text))
            for doc in docs:
                fresh_in_input = doc.id not in staged.docs and doc.id not in metadata and doc.id not in shipped
                if not rebuild and known.get(doc.id) == doc.content_hash and fresh_in_input:
                    report.unchanged.append(doc.id)
                    progress.skip()
                    continue
                if doc.id not in report.added and doc.id not in report.replaced:
                    (report.replaced if doc.id in known else report.added).append(doc.id)
                row = None if rebuild or doc.id in staged.docs else self._metadata_change(doc)
                if row is not None:
                    metadata[doc.id] = row
                    progress.skip()
                    continue
                metadata.pop(doc.id, None)  # the same id again, now with another text: the later wins
                if remote is not None:
                    shipped.pop(doc.id, None)
                    shipped[doc.id] = doc
                    continue
                staged.put(doc, self.chunker.split(doc.id, doc.text))
                if not rebuild and staged.chunks >= self.commit_chunks:
                    self._flush(staged, report, progress)
            if remote is not None and shipped:
                m = self.index.manifest
                for doc, chunks, vecs in remote.run(list(shipped.values()), model_identity(m.model_name, m.model_sha256, m.backend, m.export_sha256, m.runtime)):
                    staged.put(doc, chunks, vecs)
                    if not rebuild and staged.chunks >= self.commit_chunks:
                        self._flush(staged, report, progress)
            report.metadata_only = list(metadata)
            if staged.docs or rebuild:
                self._flush(staged, report, progress, fresh=rebuild, metadata=list(metadata.values()))
            else:  # an empty commit, too, brings the index's structures up to date
                self.index.commit(Batch(metadata=list(metadata.values())))
        report.seconds = time.perf_counter() - t0
        observe.ingested(len(report.added) + len(report.replaced), report.chunks, report.seconds)
        return report

    def delete(self, doc_ids: list[str]) -> list[str]:
        """Remove documents and their chunks everywhere; returns the ids that existed."""
        with self.index.writer():
            known = self.index.store.hashes()
            found = [d for d in dict.fromkeys(doc_ids) if d in known]
            self.index.commit(Batch(deletes=found))
            for d in found:
                self._finder().remove(d)
        return found

    def _metadata_change(self, doc: Document) -> DocRow | None:
        """The stored row with `doc`'s source, date and hash, when its text and title are as stored."""
        found = self.index.store.document(doc.id)
        if found is None:
            return None
        row, text = found
        if text != doc.text or row.title != doc.title:
            return None
        return dataclasses.replace(
            row, source=doc.source, published=doc.published, content_hash=doc.content_hash, author=doc.author
        )

    def _flush(
        self, staged: _Staged, report: IngestReport, progress: "_Progress", fresh: bool = False,
        metadata: list[DocRow] | None = None,
    ) -> None:
        items = [(doc, chunks) for doc, chunks, _ in staged.docs.values()]
        given = [v for _, _, v in staged.docs.values()]
        staged.docs.clear()
        if given and all(v is not None for v in given):  # embedded elsewhere
            dim = self.index.manifest.dim
            vecs = np.concatenate([np.asarray(v, np.float32).reshape(-1, dim) for v in given])
            progress.encoded(len(items))
        else:
            texts = [context_text(doc.title, c.text) for doc, chunks in items for c in chunks]
            ends = np.cumsum([len(chunks) for _, chunks in items]).tolist()
            vecs = self._encode(texts, lambda done: progress.encoded(bisect.bisect_right(ends, done)))
        vids = self.index.reserve_vids(len(vecs))
        finder = self._finder(fresh)
        batch = Batch(metadata=metadata or [])
        offset = 0
        stories: dict[str, str] = {}
        for doc, chunks in items:
            rows = [ChunkRow(vids[offset + i], c.doc_id, c.ordinal, c.start, c.end, c.text) for i, c in enumerate(chunks)]
            sig = dedup.signature(doc.text)
            dup_of = self._story_of(finder.match(doc.id, sig), stories)
            finder.add(doc.id, sig)
            stories[doc.id] = dup_of or doc.id
            row = DocRow(doc.id, doc.title, doc.source, doc.published, doc.content_hash, len(rows), dup_of, doc.author)
            batch.upserts.append(PendingDoc(row, doc.text, rows, vecs[offset : offset + len(rows)], sig.tobytes()))
            report.chunk_counts[doc.id] = len(rows)
            offset += len(rows)
        try:
            self.index.commit(batch, fresh=fresh)
        except BaseException:
            self._dups = None  # the finder saw uncommitted articles: rebuild it from the store
            raise
        progress.committed(len(items))

    def _finder(self, fresh: bool = False) -> dedup.DuplicateFinder:
        if fresh or self._dups is None:
            stored = {} if fresh else self.index.store.signatures()
            self._dups = dedup.DuplicateFinder({k: np.frombuffer(v, dtype=np.uint64) for k, v in stored.items()})
        return self._dups

    def _story_of(self, match: str | None, batch_stories: dict[str, str]) -> str | None:
        if match is None:
            return None
        if match in batch_stories:
            return batch_stories[match]
        row = self.index.store.documents_by_id([match]).get(match)
        return row.story if row else match

    def _encode(self, texts: list[str], on_slice: Callable[[int], None]) -> np.ndarray:
        parts = [np.zeros((0, self.index.manifest.dim), np.float32)]
        for i in range(0, len(texts), ENCODE_SLICE):
            parts.append(self.embedder.encode(texts[i : i + ENCODE_SLICE], batch_size=self.batch_size))
            on_slice(min(i + ENCODE_SLICE, len(texts)))
        return np.vstack(parts)


class _Progress:
    """Documents done = skipped + committed + fully encoded in the batch in flight."""

    def __init__(self, fn: ProgressFn | None) -> None:
        self.fn = fn
        self.done = 0

    def skip(self) -> None:
        self.done += 1
        self._emit(self.done)

    def encoded(self, docs_in_batch: int) -> None:
        self._emit(self.done + docs_in_batch)

    def committed(self, n: int) -> None:
        self.done += n
        self._emit(self.done)

    def _emit(self, n: int) -> None:
        if self.fn:
            self.fn(n)
