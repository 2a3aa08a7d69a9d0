"""BM25 word search over chunks: SQLite FTS5 for small indexes, bm25s for the bulk of large ones.

FTS5 scores every row a query word matches (~50 ms a question over RealTime QA's 65k chunks);
bm25s keeps BM25 as a sparse matrix and answers in ~2 ms, but cannot add or remove documents.
So a large index keeps a bm25s *base* over every chunk up to a row id, and searches chunks added
since with FTS5 restricted to newer row ids (few, so fast); deleted chunks of the base are simply
not found in the store and dropped. The writer rebuilds the base after a commit once the changes
since it exceed REBUILD_SHARE of it: amortised, like the vector file's batched commits.
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
    vids: np.ndarray  # bm25s document number -> chunk vid

    def search(self, query: list[str], n: int) -> list[tuple[int, float]]:
        if not query or n <= 0:
            return []
        docs, scores = self.model.retrieve([query], k=min(n, len(self.vids)), show_progress=False, n_threads=1)
        return [(int(self.vids[d]), SCALE * float(s)) for d, s in zip(docs[0], scores[0]) if s > 0]


class Lexical:
    """The lexical side of retrieval for one index folder; safe to share between threads."""

    def __init__(self, folder: Path, store: Store) -> None:
        self.folder = folder
        self.store = store
        self._lock = threading.Lock()
        self._base: Base | None = None
        self._base_key: str | None = None

    # --- searching ----------------------------------------------------------------------------
    def search(
        self, question: str, n: int, filters: Filters | None = None, keep: Callable[[str], bool] | None = None
    ) -> list[tuple[int, float]]:
        """(vid, BM25 score) best first. `keep` may leave words out of an FTS5 scan of the whole
        index (their cost); the base and the few newer chunks always get every word."""
        base = None if filters else self.base()
        if base is None:
            match = fts_query(question, keep)
            return self.store.lexical(match, n, filters) if match else []
        # Deleted chunks of the base come back too and are dropped later: ask for more.
        found = base.search(tokens(question), 2 * n)
        match = fts_query(question)
        if match:
            found += self.store.lexical(match, n, after_vid=base.max_vid)
        return sorted(found, key=lambda p: -p[1])[: 2 * n]

    def base(self) -> Base | None:
        """The committed base, (re)loaded when the writer replaced it."""
        key = self.store.meta(META_KEY)
        if key != self._base_key:
            with self._lock:
                if key != self._base_key:
                    self._base, self._base_key = _load(self.folder, key), key
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

        rows = conn.execute("SELECT rowid, body FROM chunks_fts ORDER BY rowid").fetchall()
        vids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        model = bm25s.BM25(k1=K1, b=B, method=SCORING, idf_method=SCORING)
        model.index([tokens(r[1]) or [""] for r in rows], show_progress=False)
        name = f"lexical-{int(vids[-1])}-{len(vids)}"
        tmp = self.folder / (name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            model.save(str(tmp), show_progress=False)
            np.save(tmp / "vids.npy", vids)
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


def _load(folder: Path, key: str | None) -> Base | None:
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
    except (OSError, ValueError):
        return None  # missing or damaged: FTS5 answers alone until the writer rebuilds it
    return Base(info["folder"], int(info["max_vid"]), int(info["chunks"]), model, vids)


def _fsync_tree(folder: Path) -> None:
    for f in folder.iterdir():
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
