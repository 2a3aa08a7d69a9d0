"""BM25 word search over chunks: SQLite FTS5 for small indexes, bm25s for the bulk of large ones.

FTS5 scores every row a query word matches (~50 ms a question over RealTime QA's 65k chunks);
bm25s keeps BM25 as a sparse matrix and answers in ~2 ms, but cannot add or remove documents.
So a large index keeps a bm25s *base* over every chunk up to a row id, and searches chunks added
since with FTS5 restricted to newer row ids (few, so fast); deleted chunks of the base are simply
not found in the store and dropped. The writer rebuilds the base after a commit once the changes
since it exceed REBUILD_SHARE of it: amortised, like the vector file's batched commits.

A date limit keeps the base: it holds each chunk's publication time (redated chunks patched in
from the snapshot), and a limit that admits part of it masks the rest out of bm25s's scores
(`weight_mask`); only the newer chunks, and limits on source or article ids, go to FTS5.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .store import Filters, Store
from .timerange import TIMES, Plan, Span, times_of
from ..text import STOPWORDS, stem, words

if TYPE_CHECKING:
    import bm25s

# Below this many chunks FTS5 answers in a few ms and a base is not worth its build (~0.3 s per
# 1,000 chunks here).
BASE_ABOVE_CHUNKS = 20_000
# Rebuild the base when chunks added or deleted since it exceed this share of it: FTS5 then never
# scores more than ~a tenth of the corpus, and each chunk is tokenised O(1) times amortised.
REBUILD_SHARE = 0.10
# FTS5's BM25 constants, so both engines rank alike.
K1, B = 1.2, 0.75
# The base's scores are merged with FTS5's by value, so they must be on FTS5's scale: Robertson's
# IDF, ln((N - n + 0.5) / (n + 0.5)) floored near 0 (bm25s's default, Lucene's, adds 1 inside the
# log), and the (k1 + 1) factor on the tf part that bm25s leaves out. Without both, FTS5's scores
# of the newest chunks ran ~2.2x the base's and filled half of every top 10 on a fresh RealTime
# QA ingest (lexical hit@5 0.714 -> 0.536). A base built with other scoring is rebuilt.
SCORING = "robertson"
SCALE = K1 + 1
META_KEY = "lexical_base"


def fts_query(question: str, keep: Callable[[str], bool] | None = None) -> str:
    """An FTS5 OR-query of the question's content words, each quoted (no operator injection).
    Words `keep` rejects are left out, unless that would leave none."""
    terms = list(dict.fromkeys(w.lower() for w in words(question) if w.lower() not in STOPWORDS))
    if keep is not None:
        terms = [t for t in terms if keep(t)] or terms
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def tokens(text: str) -> list[str]:
    """Stemmed content words, the same for chunks and questions."""
    return [stem(w) for w in words(text) if w.lower() not in STOPWORDS and (len(w) > 1 or w.isdigit())]


@dataclass
class Base:
    """A loaded bm25s index over the chunks with vid <= max_vid."""

    folder: str
    max_vid: int
    chunks: int
    model: "bm25s.BM25"
    vids: np.ndarray  # bm25s document number -> chunk vid, ascending
    times: np.ndarray  # bm25s document number -> publication time as the base was built

    def search(self, query: list[str], n: int, mask: np.ndarray | None = None) -> list[tuple[int, float]]:
        """Best n (vid, score); `mask` (a 0/1 float per document) leaves out those it zeroes."""
        if not query or n <= 0:
            return []
        docs, scores = self.model.retrieve([query], k=min(n, len(self.vids)), show_progress=False, n_threads=1,
                                           weight_mask=mask)
        return [(int(self.vids[d]), SCALE * float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


class Lexical:
    """The lexical side of retrieval for one index folder; safe to share between threads."""

    def __init__(
        self, folder: Path, store: Store,
        redated: Callable[[], tuple[int, np.ndarray, np.ndarray]] | None = None,
    ) -> None:
        self.folder = folder
        self.store = store
        self._lock = threading.Lock()
        self._base: Base | None = None
        self._base_key: str | None = None
        # (generation, vids, times) of chunks redated since their times were written: the snapshot's
        self._redated = redated
        self._times: tuple[tuple, np.ndarray, Span] | None = None  # (base, generation) -> times, span

    # --- searching ----------------------------------------------------------------------------
    def search(
        self, question: str, n: int, filters: Filters | None = None, keep: Callable[[str], bool] | None = None,
        plan: Plan | None = None,
    ) -> list[tuple[int, float]]:
        """(vid, BM25 score) best first. `keep` may leave words out of an FTS5 scan of the whole
        index (their cost); the base and the few newer chunks always get every word. `plan` is
        told which way the date limit went ('fts5', or 'bm25s' with 'all', 'some' or 'none')."""
        base = None if filters and filters.needs_sql else self.base()
        if base is None:
            match = fts_query(question, keep)
            if plan is not None:
                plan.lexical = "fts5"
            return self.store.lexical(match, n, filters or None) if match else []
        within = filters.within() if filters else None
        times, span = self._base_times(base)
        cover = "all" if within is None else within.covers(span)
        if plan is not None:
            plan.lexical = f"bm25s:{cover}"
        found: list[tuple[int, float]] = []
        if cover != "none":
            mask = None if cover == "all" else within.admits(times).astype(np.float32)  # type: ignore[union-attr]
            # Deleted chunks of the base come back too and are dropped later: ask for more.
            found = base.search(tokens(question), 2 * n, mask)
        match = fts_query(question)
        if match:
            found += self.store.lexical(match, n, filters or None, after_vid=base.max_vid)
        return sorted(found, key=lambda p: -p[1])[: 2 * n]

    def _base_times(self, base: Base) -> tuple[np.ndarray, Span]:
        """The base's times with the snapshot's redated chunks patched in, and their span."""
        gen, vids, times = self._redated() if self._redated is not None else (0, np.zeros(0, np.int64), None)
        key = (base.folder, gen if len(vids) else 0)
        cached = self._times
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        out = base.times
        if len(vids):
            pos = np.minimum(np.searchsorted(base.vids, vids), len(base.vids) - 1)
            held = base.vids[pos] == vids
            if held.any():
                out = base.times.copy()
                out[pos[held]] = times[held]  # type: ignore[index]
        self._times = (key, out, Span.of(out))
        return out, self._times[2]

    def base(self) -> Base | None:
        """The committed base, (re)loaded when the writer replaced it."""
        key = self.store.meta(META_KEY)
        if key != self._base_key:
            with self._lock:
                if key != self._base_key:
                    self._base, self._base_key = _load(self.folder, key, self.store), key
        return self._base

    # --- maintaining (writer only, after a commit) -------------------------------------------
    def maintain(self, conn, force: bool = False) -> bool:  # type: ignore[no-untyped-def]
        """Rebuild the base when the index is large and has drifted from it; True if rebuilt."""
        total = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
        info = json.loads(self.store.meta(META_KEY) or "null")
        if total <= BASE_ABOVE_CHUNKS:
            if info is not None:  # shrank: back to FTS5 alone
                conn.execute("DELETE FROM meta WHERE key=?", (META_KEY,))
                self._remove_old(keep=None)
            return False
        if info is not None and not force and info.get("scoring") == SCORING:
            kept = conn.execute("SELECT count(*) FROM chunks WHERE vid <= ?", (info["max_vid"],)).fetchone()[0]
            changed = (total - kept) + (info["chunks"] - kept)
            if changed <= REBUILD_SHARE * info["chunks"]:
                return False
        self._build(conn)
        return True

    def _build(self, conn, on_progress: Callable[[int], None] | None = None) -> None:  # type: ignore[no-untyped-def]
        import bm25s

        rows = conn.execute(
            "SELECT f.rowid, f.body, d.published FROM chunks_fts f LEFT JOIN chunks c ON c.vid = f.rowid "
            "LEFT JOIN documents d ON d.id = c.doc_id ORDER BY f.rowid").fetchall()
        vids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        times = times_of([r[2] for r in rows])
        model = bm25s.BM25(k1=K1, b=B, method=SCORING, idf_method=SCORING)
        model.index([tokens(r[1]) or [""] for r in rows], show_progress=False)
        name = f"lexical-{int(vids[-1])}-{len(vids)}"
        tmp = self.folder / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            model.save(str(tmp), show_progress=False)
            np.save(tmp / "vids.npy", vids)
            np.save(tmp / TIMES, times)
            _fsync_tree(tmp)
        except BaseException:  # e.g. a full disk: leave no half-written base taking up room
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = self.folder / name
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        info = {"folder": name, "max_vid": int(vids[-1]), "chunks": len(vids), "scoring": SCORING}
        Store.set_meta(conn, META_KEY, json.dumps(info))
        self._remove_old(keep=name)

    def _remove_old(self, keep: str | None) -> None:
        # Readers map the old files; on POSIX a removed mapped file stays readable to them.
        for f in self.folder.glob("lexical-*"):
            if f.name != keep:
                shutil.rmtree(f, ignore_errors=True)


def _load(folder: Path, key: str | None, store: Store) -> Base | None:
    if not key:
        return None
    import bm25s

    info = json.loads(key)
    if info.get("scoring") != SCORING:
        return None  # scored on another scale: FTS5 answers alone until the writer rebuilds it
    path = folder / info["folder"]
    try:
        model = bm25s.BM25.load(str(path), mmap=True, show_progress=False)
        vids = np.load(path / "vids.npy")
        # a base built before bases kept times: its chunks' times from the store
        times = np.load(path / TIMES) if (path / TIMES).exists() else store.times_of(vids)
    except (OSError, ValueError):
        return None  # missing or damaged: FTS5 answers alone until the writer rebuilds it
    return Base(info["folder"], int(info["max_vid"]), int(info["chunks"]), model, vids, times)


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
