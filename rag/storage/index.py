"""The persisted index: chunk store (SQLite) + immutable vector segments + a manifest.

Commit protocol: a commit writes only its new vectors, as a new segment folder renamed into place
first; then one SQLite transaction writes the rows, the segment's record, tombstones for the chunks
it deletes or replaces, and `generation = g+1`. A crash before that transaction leaves generation g
whole (the unrecorded folder is removed by the next writer); after it, the segment is in place.
A merge (`merge_step`) is a commit of its own that swaps several segments for one without their
tombstoned vectors. Readers keep the snapshot they loaded and, on their next query after a newer
generation, open only the segments they do not have yet.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from ..config import MAX_SEGMENT_VECTORS, MERGE_FACTOR

from . import merging, segments, vectors
from .lexical import Lexical
from .locks import flock
from .space import no_space_told, storage_full
from .store import ChunkRow, DocRow, SegmentRow, Store
from .timerange import Plan, TimeRange, times_of

log = logging.getLogger("rag.storage")

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
STORE = "store.sqlite"
# Recorded by every commit since vectors live in segments; an index without it is single-file.
SEGMENTS_FORMAT = "vector_format"


class IndexError_(RuntimeError):  # trailing underscore: not the builtin IndexError
    """The index cannot be used as asked (built with other settings, locked, damaged)."""


class IndexMismatch(IndexError_):
    pass


# Manifest fields naming what made the vectors beside the model, compared as one.
VECTOR_MAKER = ("export_sha256", "runtime")


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
    # What turns the weights into vectors, where that is not the weights' own framework: the ONNX
    # export's sha256 and the onnxruntime release running it (empty for other backends, and in
    # indexes made before they were recorded). Compared like the model: another export or
    # runtime moves vectors by up to ~3e-2 a component, so an index never mixes them.
    export_sha256: str = ""
    runtime: str = ""
    # The CPU classes (rag.embedding.cpu_class) of the machines whose commits wrote here;
    # informative, never a mismatch: int8 kernels differ by class (docs/benchmarks.md).
    cpu_classes: list[str] = []

    def differences(self, other: "Manifest") -> list[str]:
        skip = {"vector_index", "cpu_classes", *VECTOR_MAKER}
        mine, theirs = self.model_dump(exclude=skip), other.model_dump(exclude=skip)
        diffs = [f"{k}: index has {mine[k]!r}, settings want {theirs[k]!r}" for k in mine if mine[k] != theirs[k]]
        if any(getattr(self, k) != getattr(other, k) for k in VECTOR_MAKER):
            diffs.append(f"vectors: the index holds those of {self.vector_maker()}, "
                         f"this process makes those of {other.vector_maker()}")
        return diffs

    def vector_maker(self) -> str:
        if not (self.export_sha256 or self.runtime):
            return "no recorded export (an index from before exports were recorded)"
        return f"export {self.export_sha256[:16]} on {self.runtime or 'an unrecorded runtime'}"


@dataclass
class Snapshot:
    """One committed generation as a reader sees it: its segments with their tombstones."""

    generation: int
    views: list[segments.View]
    legacy: segments.Segment | None = None  # an older single-file index, until a commit migrates it
    # (vids, times) of chunks redated after their segment was written (Store.redated)
    redated: tuple[np.ndarray, np.ndarray] = field(
        default_factory=lambda: (np.zeros(0, np.int64), np.zeros(0, np.int64)))

    @property
    def live(self) -> int:
        return sum(v.live for v in self.views)


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
    def __init__(
        self, folder: Path, manifest: Manifest, policy: vectors.IndexPolicy | None = None,
        merge_factor: int = MERGE_FACTOR, max_segment_vectors: int = MAX_SEGMENT_VECTORS,
    ) -> None:
        self.folder = folder
        self.manifest = manifest
        self.policy = policy or vectors.IndexPolicy()
        self.merge_factor = merge_factor
        self.max_segment_vectors = max_segment_vectors
        self.store = Store(folder / STORE)
        self.lexical = Lexical(folder, self.store, self._redated)
        self._snapshot_lock = threading.Lock()
        self._opened: dict[str, segments.Segment] = {}  # by name, shared by successive snapshots
        self._snapshot = self._load_snapshot()

    # --- opening -----------------------------------------------------------------------------
    @classmethod
    def open(
        cls, folder: Path, wanted: Manifest, rebuild: bool = False, policy: vectors.IndexPolicy | None = None,
        **merge: int,
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
            if not rebuild:  # commits keep the classes of the vectors already there
                wanted = wanted.model_copy(update={"cpu_classes": sorted({*found.cpu_classes, *wanted.cpu_classes})})
        store.close()
        return cls(folder, wanted, policy, **merge)

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

    def _legacy_path(self, generation: int) -> Path:
        return self.folder / f"vectors-{generation}.faiss"

    def _load_snapshot(self) -> Snapshot:
        # A merge may commit and remove a segment between reading the list and opening it: read again.
        for _ in range(5):
            gen, rows, dead = self.store.segment_state()
            try:
                return self._assemble(gen, rows, np.asarray(dead, dtype=np.int64))
            except OSError as exc:
                if self.store.generation() == gen:
                    raise IndexError_(f"{exc}; rebuild with `rag ingest --rebuild`") from None
        raise IndexError_("the index changed too often while loading; try again")

    def _assemble(self, gen: int, rows: list[SegmentRow], dead: np.ndarray) -> Snapshot:
        legacy = None
        if gen > 0 and not rows and self.store.meta(SEGMENTS_FORMAT) is None:
            legacy = self._opened.get("(single file)") or self._open_legacy(gen)
            opened = {"(single file)": legacy}
        else:
            opened = {r.name: self._opened.get(r.name) or segments.open_segment(
                self.folder, r.name, r.structure, self.policy, self.store.times_of) for r in rows}
        self._opened = opened
        redated = self.store.redated()
        views = [segments.View(seg, np.intersect1d(dead, seg.ids, assume_unique=True), _redate(seg, *redated))
                 for seg in opened.values()]
        return Snapshot(gen, views, legacy, redated)

    def _open_legacy(self, gen: int) -> segments.Segment:
        """An index written before segments: one FAISS file of every live vector."""
        path = self._legacy_path(gen)
        try:
            index = vectors.read(path)
        except RuntimeError:
            raise OSError(f"{path} is missing or damaged") from None
        ids, vecs = vectors.all_vectors(index)
        return segments.in_memory(ids, vecs, index, self.policy, self.store.times_of)

    def snapshot(self) -> Snapshot:
        """The latest committed generation, refreshed when another process or thread committed."""
        gen = self.store.generation()
        with self._snapshot_lock:
            if gen != self._snapshot.generation:
                self._snapshot = self._load_snapshot()
            return self._snapshot

    # --- reading -----------------------------------------------------------------------------
    def search(
        self, query: np.ndarray, k: int, allowed: list[int] | None = None, within: TimeRange | None = None,
        plan: Plan | None = None,
    ) -> list[tuple[ChunkRow, float]]:
        """Top-k chunks by cosine over every live segment, optionally among `allowed` ids only and
        within a date limit. Rows deleted since the snapshot are skipped, never shown."""
        hits = self.search_vids(query, k, allowed, within, plan)
        rows = self.store.chunks_by_vid([vid for vid, _ in hits])
        return [(rows[vid], score) for vid, score in hits if vid in rows]

    def search_vids(
        self, query: np.ndarray, k: int, allowed: list[int] | None = None, within: TimeRange | None = None,
        plan: Plan | None = None,
    ) -> list[tuple[int, float]]:
        """(vid, cosine) best first, as one index over the same live vectors would rank them.
        `within`: segments outside it are skipped, those inside searched unfiltered, and only
        those straddling it filtered; `plan` counts which way each segment went."""
        q = np.ascontiguousarray(query, dtype=np.float32).reshape(-1)
        wanted = None if allowed is None else np.unique(np.asarray(allowed, dtype=np.int64))
        if wanted is not None and not len(wanted):
            return []
        parts = [v.search(q, k, wanted, within, plan) for v in self.snapshot().views]
        if not parts:
            return []
        vids = np.concatenate([p[0] for p in parts])
        scores = np.concatenate([p[1] for p in parts])
        top = np.lexsort((vids, -scores))[:k]  # best score first, ties by id
        return [(int(vids[i]), float(scores[i])) for i in top]

    def vector_count(self) -> int:
        """Live vectors in the committed generation."""
        return self.snapshot().live

    def term_stats(self) -> "TermStats":
        """Chunk counts and word document frequencies of the committed generation, cached."""
        gen = self.store.generation()
        stats = getattr(self, "_term_stats", None)
        if stats is None or stats.generation != gen:
            stats = self._term_stats = TermStats(gen, self.store.counts()[1], self.store)
        return stats

    def vectors_present(self, vids: list[int]) -> dict[int, np.ndarray]:
        """Vectors of those chunks the current snapshot holds. A reader's snapshot may predate a
        commit whose chunks the word index already returns; those are simply not here yet."""
        wanted = np.asarray(vids, dtype=np.int64)
        out: dict[int, np.ndarray] = {}
        for view in self.snapshot().views:
            held, rows = view.segment.rows_of(wanted)
            if len(held):
                out.update(zip(held.tolist(), view.segment.vectors_of(rows)))
        return out

    def vectors_for(self, vids: list[int]) -> np.ndarray:
        """The vectors of `vids`, in order; every id must be stored."""
        found = self.vectors_present(vids)
        missing = [v for v in vids if v not in found]
        if missing:
            raise KeyError(f"no vector for chunk ids {missing[:5]}")
        return np.vstack([found[v] for v in vids]) if vids else np.zeros((0, self.manifest.dim), np.float32)

    def segment_stats(self) -> list[dict]:
        """Each live segment: name, structure, vectors, tombstones, bytes on disk and in memory."""
        snap = self.snapshot()
        recorded = {r.name: r for r in self.store.segment_state()[1]}
        return [
            {"name": v.segment.name, "structure": v.segment.structure, "vectors": len(v.segment),
             "tombstones": len(v.dead), "disk_bytes": recorded[v.segment.name].bytes if v.segment.name in recorded else 0,
             "memory_bytes": v.segment.memory_bytes, "published_from": v.span.start, "published_to": v.span.end,
             "undated": v.span.undated}
            for v in snap.views
        ]

    # --- writing -----------------------------------------------------------------------------
    @contextmanager
    def writer(self) -> Iterator["Index"]:
        """One writer at a time across threads and processes (an advisory file lock). A write
        that runs out of disk space leaves as `space.StorageFull`, naming the file."""
        with no_space_told(self.folder), flock(self.folder / "write.lock", blocking=True):
            yield self

    def commit(self, batch: Batch, fresh: bool = False) -> int:
        """Apply a batch atomically (call inside `writer()`); returns the new generation.

        Writes one segment of the batch's vectors; deleted and replaced chunks become tombstones.
        `fresh` replaces everything (a rebuild): all old rows and segments go, and the manifest is
        rewritten in the same transaction, so a crash mid-rebuild leaves the old index, not a mix.
        An index still in the single-file format is migrated into a segment by this commit.
        """
        old = self.snapshot()
        if not batch.upserts and not batch.deletes and not fresh and old.legacy is None:
            if batch.metadata:  # rows only: vectors and words stay, so does the generation
                self._commit_metadata(batch.metadata)
            return old.generation
        self._remove_unrecorded()
        conn = self.store.connect()
        new_gen = old.generation + 1
        built: list[segments.Written] = []
        try:
            # Segments are written before the transaction, so SQLite's write lock is held only for rows.
            if old.legacy is not None and not fresh:
                built.append(self._build(old.legacy.ids, old.legacy.vecs, old.legacy.times, prebuilt=old.legacy.index))
            ids, vecs, times = _batch_vectors(batch, self.manifest.dim)
            if len(ids):
                built.append(self._build(ids, vecs, times))
            conn.execute("BEGIN IMMEDIATE")
            if fresh:
                self.store.delete_all(conn)
            removed: list[int] = []
            for doc_id in batch.deletes + [p.row.id for p in batch.upserts]:
                removed += self.store.delete_document(conn, doc_id)
            if not fresh:
                self.store.add_tombstones(conn, removed)
            for pending in batch.upserts:
                self.store.insert_document(conn, pending.row, pending.text, pending.chunks, pending.signature)
            for row in batch.metadata:
                self.store.update_metadata(conn, row)
            for w in built:
                segments.publish(self.folder, w.name)
                self.store.add_segment(conn, SegmentRow(w.name, w.structure, w.vectors, w.bytes, new_gen))
            summary = _summary(([] if fresh else [v for v in old.views if old.legacy is None]), built)
            manifest = self.manifest.model_copy(update={"vector_index": summary})
            self.store.set_meta(conn, "generation", str(new_gen))
            self.store.set_meta(conn, SEGMENTS_FORMAT, "segments")
            self.store.set_meta(conn, "manifest", manifest.model_dump_json())
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # SQLite may have rolled back already (a full disk does that)
                conn.execute("ROLLBACK")
            for w in built:
                segments.discard(self.folder, w.name)
            raise
        self.manifest = manifest
        self._after_commit(manifest, new_gen)
        return new_gen

    def _build(self, ids: np.ndarray, vecs: np.ndarray, times: np.ndarray, prebuilt=None) -> segments.Written:  # type: ignore[no-untyped-def]
        return segments.build(self.folder, ids, vecs, self.policy, prebuilt=prebuilt, times=times)

    def _redated(self) -> tuple[int, np.ndarray, np.ndarray]:
        """(generation, vids, times) of the current snapshot's redated chunks, for the word index."""
        snap = self.snapshot()
        return snap.generation, *snap.redated

    def _after_commit(self, manifest: Manifest, gen: int) -> None:
        """Tidying after the commit point: a crash here leaves files the next writer removes."""
        try:
            _write_json_atomic(self.folder / MANIFEST, manifest.model_dump())
            self._remove_unrecorded()
        except Exception as exc:  # the commit stands; a full disk only delays these copies
            if storage_full(exc, self.folder) is None:
                raise
            log.warning("index generation %d committed, but its manifest copy was not written: %s", gen, exc)

    def _commit_metadata(self, rows: list[DocRow]) -> None:
        conn = self.store.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            redated = [self.store.update_metadata(conn, row) for row in rows]
            if any(redated):  # readers must reload their times: a new generation of the same segments
                self.store.set_meta(conn, "generation", str(self.store.generation() + 1))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def reserve_vids(self, n: int) -> list[int]:
        """Fresh ids (never reused, so a stale snapshot or a tombstone cannot point at a new chunk)."""
        conn = self.store.connect()
        start = max(self.store.next_vid(conn), getattr(self, "_next_vid", 0))
        self._next_vid = start + n
        return list(range(start, start + n))

    def _remove_unrecorded(self) -> None:
        """Segment folders no generation names (a crash between writing and committing) and an
        older single-file index already migrated. Call with the write lock held: only a writer
        publishes segments."""
        gen, rows, _ = self.store.segment_state()
        names = {r.name for r in rows}
        for path in segments.folders(self.folder):
            if not path.name.endswith(segments.TMP) and path.name not in names:
                segments.remove(self.folder, path.name)
        migrated = bool(rows) or self.store.meta(SEGMENTS_FORMAT) is not None
        for f in self.folder.glob("vectors-*.faiss*"):
            if migrated or gen == 0 or f.name != f"vectors-{gen}.faiss":
                f.unlink(missing_ok=True)

    # --- merging (in the background; never under the write lock but for its commit) ---------
    def merge_step(self) -> dict | None:
        """Merge the segments the tiered policy picks into one, as a commit of its own; None when
        nothing needs merging or another process is merging. Queries go on meanwhile, and a
        writer waits only for the merge's own short commit."""
        with flock(self.folder / "merge.lock", blocking=False) as held:
            if not held:
                return None
            segments.remove_abandoned(self.folder)  # a merge or commit killed before its commit
            snap = self.snapshot()
            if snap.legacy is not None:
                return None
            sizes = [merging.SegmentSize(v.segment.name, v.live, len(v.segment), v.span.start, v.span.end)
                     for v in snap.views]
            names = merging.plan(sizes, self.merge_factor, self.max_segment_vectors)
            if not names:
                return None
            t0 = time.perf_counter()
            chosen = [v for v in snap.views if v.segment.name in names]
            ids, gathered, times = segments.merged_parts(chosen)
            dropped = np.concatenate([v.dead for v in chosen])
            built = self._build(ids, gathered, times) if len(ids) else None
            try:
                gen = self._commit_merge(names, built, dropped)
            except BaseException:
                if built is not None:
                    segments.discard(self.folder, built.name)
                raise
            if gen is None:
                return None
            for name in names:
                segments.remove(self.folder, name)
            return {"merged": len(names), "into": built.structure if built else None, "vectors": len(ids),
                    "dropped": len(dropped), "seconds": round(time.perf_counter() - t0, 3), "generation": gen}

    def _commit_merge(self, names: list[str], built: segments.Written | None, dropped: np.ndarray) -> int | None:
        with self.writer():
            gen, rows, _ = self.store.segment_state()
            if not set(names) <= {r.name for r in rows}:  # a rebuild replaced them meanwhile
                if built is not None:
                    segments.discard(self.folder, built.name)
                return None
            conn = self.store.connect()
            if built is not None:
                segments.publish(self.folder, built.name)
                # Opened before the commit: this process's next query finds it ready.
                opened = segments.open_segment(self.folder, built.name, built.structure, self.policy, self.store.times_of)
                with self._snapshot_lock:
                    self._opened[built.name] = opened
            conn.execute("BEGIN IMMEDIATE")
            try:
                self.store.remove_segments(conn, names)
                if built is not None:
                    self.store.add_segment(conn, SegmentRow(built.name, built.structure, built.vectors, built.bytes, gen + 1))
                self.store.drop_tombstones(conn, dropped.tolist())
                self.store.set_meta(conn, "generation", str(gen + 1))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            return gen + 1

    def maintain(self, on_step: Callable[[dict], None] | None = None) -> list[dict]:
        """Bring the index's structures up to date: migrate a single-file index, merge segments
        until the policy is satisfied, remove segment folders no generation names (when no writer
        is busy), and rebuild the word index's base once it has drifted."""
        if self.snapshot().legacy is not None:
            with self.writer():
                self.commit(Batch())
        steps = []
        while (step := self.merge_step()) is not None:
            steps.append(step)
            if on_step is not None:
                on_step(step)
        with flock(self.folder / "write.lock", blocking=False) as writing:
            if writing:  # what a merge or commit killed after publishing left; else the next commit does
                self._remove_unrecorded()
        with flock(self.folder / "merge.lock", blocking=False) as held:
            if held:
                self.lexical.maintain(self.store.connect())
        return steps

    def close(self) -> None:
        self.store.close()


def _batch_vectors(batch: Batch, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The batch's chunk ids (ascending), vectors and publication times."""
    if not batch.upserts:
        return np.zeros(0, np.int64), np.zeros((0, dim), np.float32), np.zeros(0, np.int64)
    ids = np.concatenate([np.array([c.vid for c in p.chunks], dtype=np.int64) for p in batch.upserts])
    vecs = np.vstack([np.asarray(p.vectors, dtype=np.float32).reshape(-1, dim) for p in batch.upserts])
    times = times_of([p.row.published for p in batch.upserts for _ in p.chunks])
    order = np.argsort(ids, kind="stable")
    return ids[order], vecs[order], times[order]


def _redate(seg: segments.Segment, vids: np.ndarray, times: np.ndarray) -> np.ndarray | None:
    """The segment's times with those of its redated chunks replaced; None when none is its."""
    held, rows = seg.rows_of(vids)
    if not len(held):
        return None
    out = np.array(seg.times)
    out[rows] = times[np.searchsorted(vids, held)]
    return out


def _summary(kept: list[segments.View], built: list[segments.Written]) -> dict:
    """What the manifest records of the vectors: informative, never compared."""
    structures: dict[str, int] = {}
    for s in [v.segment.structure for v in kept] + [w.structure for w in built]:
        structures[s] = structures.get(s, 0) + 1
    return {"type": "segments", "segments": len(kept) + len(built), "structures": structures}


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
