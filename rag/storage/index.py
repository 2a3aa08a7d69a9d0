"""The persisted index: chunk store (SQLite) + FAISS vectors + a manifest, committed atomically.

Commit protocol: the new FAISS file `vectors-<g+1>.faiss` is written and renamed into place first,
then one SQLite transaction writes the rows and `generation = g+1`. A crash before that commit
leaves generation g and its file intact; after it, the new file is already there. Readers keep the
snapshot they loaded and pick up a newer generation on their next query.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np
from pydantic import BaseModel

from . import vectors
from .lexical import Lexical
from .space import no_space_told, storage_full
from .store import ChunkRow, DocRow, Store

log = logging.getLogger("rag.storage")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "store.sqlite"


class IndexError_(RuntimeError):  # trailing underscore: not the builtin IndexError
    """The index cannot be used as asked (built with other settings, locked, damaged)."""


class IndexMismatch(IndexError_):
    pass


class Manifest(BaseModel):
    """What built this index; an index built otherwise is refused rather than silently mixed."""

    format_version: int = FORMAT_VERSION
    model_name: str
    model_sha256: str
    backend: str
    dim: int
    chunker: dict
    # The vector structure as last committed (vectors.describe); informative, never a mismatch:
    # the structure follows the index's size and the policy, and a commit converts it.
    vector_index: dict = {}

    def differences(self, other: "Manifest") -> list[str]:
        mine, theirs = self.model_dump(exclude={"vector_index"}), other.model_dump(exclude={"vector_index"})
        return [f"{k}: index has {mine[k]!r}, settings want {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]


@dataclass
class Snapshot:
    generation: int
    faiss_index: faiss.Index


class TermStats:
    """How many chunks an index generation holds and how many contain a word (FTS5's stemming),
    memoised: BM25 pruning and the answer's IDF weights ask for the same words again and again."""

    def __init__(self, generation: int, chunks: int, store: Store) -> None:
        self.generation = generation
        self.chunks = chunks
        self._store = store
        self._df: dict[str, int] = {}

    def doc_freq(self, word: str) -> int:
        if word not in self._df:
            if len(self._df) > 100_000:  # bounded: a long-running server sees many words
                self._df.clear()
            self._df[word] = self._store.term_frequency(word)
        return self._df[word]


@dataclass
class PendingDoc:
    row: DocRow
    text: str
    chunks: list[ChunkRow]
    vectors: np.ndarray
    signature: bytes | None = None


@dataclass
class Batch:
    """Changes staged in memory; nothing is visible until `Index.commit`."""

    upserts: list[PendingDoc] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    # Stored documents whose source, date or hash changed but whose text and title did not.
    metadata: list[DocRow] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.metadata)


class Index:
    def __init__(self, folder: Path, manifest: Manifest, policy: vectors.IndexPolicy | None = None) -> None:
        self.folder = folder
        self.manifest = manifest
        self.policy = policy or vectors.IndexPolicy()
        self.store = Store(folder / STORE)
        self.lexical = Lexical(folder, self.store)
        self._snapshot_lock = threading.Lock()
        self._snapshot = self._load_snapshot()

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls, folder: Path, wanted: Manifest, rebuild: bool = False, policy: vectors.IndexPolicy | None = None
    ) -> "Index":
        """Open or create; refuse an index built with other settings unless `rebuild`.

        With `rebuild`, the index opens empty-handed for a fresh commit (`commit(..., fresh=True)`):
        its old rows stay readable and committed until that commit replaces them.
        """
        with no_space_told(folder):
            folder.mkdir(parents=True, exist_ok=True)
            store = Store(folder / STORE)
            raw = store.meta("manifest")
            if raw is None:
                conn = store.connect()
                Store.set_meta(conn, "manifest", wanted.model_dump_json())
                _write_json_atomic(folder / MANIFEST, wanted.model_dump())
        if raw is not None:
            found = Manifest.model_validate_json(raw)
            diffs = found.differences(wanted)
            if diffs and not rebuild:
                raise IndexMismatch(
                    f"the index in {folder} was built with other settings ({'; '.join(diffs)}); "
                    "run `rag ingest --rebuild` to rebuild it from its stored documents"
                )
        store.close()
        return cls(folder, wanted, policy)

    @staticmethod
    def read_manifest(folder: Path) -> Manifest | None:
        if not (folder / STORE).exists():
            return None
        store = Store(folder / STORE)
        try:
            raw = store.meta("manifest")
            return None if raw is None else Manifest.model_validate_json(raw)
        finally:
            store.close()

    def _vector_path(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation}.faiss"

    def _load_snapshot(self) -> Snapshot:
        # A writer may commit and delete the file between our two reads: read the generation again.
        for _ in range(5):
            gen = self.store.generation()
            if gen == 0:
                return Snapshot(0, vectors.new_index(self.manifest.dim))
            try:
                loaded = vectors.read(self._vector_path(gen))
                vectors.set_nprobe(loaded, self.policy.nprobe)
                return Snapshot(gen, loaded)
            except RuntimeError:
                if self.store.generation() == gen:
                    raise IndexError_(
                        f"{self._vector_path(gen)} is missing or damaged; rebuild with `rag ingest --rebuild`"
                    ) from None
        raise IndexError_("the index changed too often while loading; try again")

    def snapshot(self) -> Snapshot:
        """The latest committed vectors, reloaded when another process or thread committed."""
        gen = self.store.generation()
        with self._snapshot_lock:
            if gen != self._snapshot.generation:
                self._snapshot = self._load_snapshot()
            return self._snapshot

    # --- reading -----------------------------------------------------------------------------
    def search(self, query: np.ndarray, k: int, allowed: list[int] | None = None) -> list[tuple[ChunkRow, float]]:
        """Top-k chunks by cosine, optionally among `allowed` ids only. Rows deleted since the
        snapshot are skipped, never shown."""
        hits = vectors.search(self.snapshot().faiss_index, query, k, allowed)
        rows = self.store.chunks_by_vid([vid for vid, _ in hits])
        return [(rows[vid], score) for vid, score in hits if vid in rows]

    def term_stats(self) -> "TermStats":
        """Chunk counts and word document frequencies of the committed generation, cached."""
        gen = self.store.generation()
        stats = getattr(self, "_term_stats", None)
        if stats is None or stats.generation != gen:
            stats = self._term_stats = TermStats(gen, self.store.counts()[1], self.store)
        return stats

    def vectors_present(self, vids: list[int]) -> dict[int, np.ndarray]:
        """Vectors of those chunks the current snapshot holds (see vectors.reconstruct_present)."""
        return vectors.reconstruct_present(self.snapshot().faiss_index, vids)

    def vectors_for(self, vids: list[int]) -> np.ndarray:
        return vectors.reconstruct(self.snapshot().faiss_index, vids)

    # --- writing -----------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator["Index"]:
        """One writer at a time across threads and processes (an advisory file lock). A write
        that runs out of disk space leaves as `space.StorageFull`, naming the file."""
        lock_path = self.folder / "write.lock"
        with no_space_told(self.folder), open(lock_path, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield self
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def commit(self, batch: Batch, fresh: bool = False) -> int:
        """Apply a batch atomically (call inside `writer()`); returns the new generation.

        `fresh` replaces everything (a rebuild): all old rows go, and the manifest is rewritten in
        the same transaction, so a crash mid-rebuild leaves the old index, not a mix.
        """
        old = self.snapshot()
        if not batch.upserts and not batch.deletes and not fresh and vectors.fits(old.faiss_index, self.policy):
            if batch.metadata:  # rows only: vectors and words stay, so does the generation
                self._commit_metadata(batch.metadata)
            self.lexical.maintain(self.store.connect())  # e.g. a word-index base of older scoring
            return old.generation
        conn = self.store.connect()
        new_index = vectors.new_index(self.manifest.dim) if fresh else vectors.clone(old.faiss_index)
        new_gen = old.generation + 1
        conn.execute("BEGIN IMMEDIATE")
        try:
            if fresh:
                self.store.delete_all(conn)
            removed: list[int] = []
            for doc_id in batch.deletes + [p.row.id for p in batch.upserts]:
                removed += self.store.delete_document(conn, doc_id)
            vectors.remove(new_index, removed)
            for pending in batch.upserts:
                self.store.insert_document(conn, pending.row, pending.text, pending.chunks, pending.signature)
                ids = np.array([c.vid for c in pending.chunks], dtype=np.int64)
                vectors.add(new_index, ids, pending.vectors)
            for row in batch.metadata:
                self.store.update_metadata(conn, row)
            new_index = vectors.conform(new_index, self.policy)
            manifest = self.manifest.model_copy(update={"vector_index": vectors.describe(new_index)})
            vectors.write_atomic(new_index, self._vector_path(new_gen))
            self.store.set_meta(conn, "generation", str(new_gen))
            self.store.set_meta(conn, "manifest", manifest.model_dump_json())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk does that)
                conn.execute("ROLLBACK")
            self._vector_path(new_gen).unlink(missing_ok=True)
            raise
        self.manifest = manifest
        with self._snapshot_lock:
            self._snapshot = Snapshot(new_gen, new_index)
        try:
            _write_json_atomic(self.folder / MANIFEST, self.manifest.model_dump())
            self._remove_stale_files(new_gen)
            # After the commit point: a crash here leaves an older base, which search handles.
            self.lexical.maintain(conn, force=fresh)
        except Exception as exc:  # the commit stands; a full disk only delays these copies
            if storage_full(exc, self.folder) is None:
                raise
            log.warning("index generation %d committed, but its manifest copy or word-index base was not written: %s",
                        new_gen, exc)
        return new_gen

    def _commit_metadata(self, rows: list[DocRow]) -> None:
        conn = self.store.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                self.store.update_metadata(conn, row)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def reserve_vids(self, n: int) -> list[int]:
        """Fresh FAISS ids (never reused, so a stale snapshot cannot point at a new chunk)."""
        conn = self.store.connect()
        start = max(self.store.next_vid(conn), getattr(self, "_next_vid", 0))
        self._next_vid = start + n
        return list(range(start, start + n))

    def _remove_stale_files(self, keep: int) -> None:
        for f in self.folder.glob("vectors-*.faiss*"):
            if f.name != f"vectors-{keep}.faiss":
                try:
                    f.unlink()
                except OSError:
                    pass

    def close(self) -> None:
        self.store.close()


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
