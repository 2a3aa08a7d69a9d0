"""The chunk store: documents, chunk texts and offsets, an FTS5 word index, and the list of
vector segments with their tombstones, in SQLite.

SQLite's transaction is the commit point of the whole index: it records which segment files
(generation) match its rows, so a crash at any moment leaves a consistent last-good index.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

from .. import dates
from ..text import context_text
from .timerange import NO_DATE, TimeRange


def iso_day(published: str | None) -> str | None:
    """The UTC day of a stored `published` ('2022/06/12', '2022-06-12T23:30:00-05:00' -> '2022-06-13'),
    read tolerantly (older indexes keep dates as their sources wrote them); None when undated."""
    return dates.day(published)


SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT, source TEXT, published TEXT, text TEXT NOT NULL,
    content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL,
    published_day TEXT,  -- ISO YYYY-MM-DD parsed from `published`, NULL when undated
    dup_of TEXT,         -- the earlier article this one repeats (near-duplicate), else NULL
    author TEXT          -- as the source states it (a web page's byline), else NULL
);
CREATE INDEX IF NOT EXISTS documents_dup ON documents(dup_of);
CREATE INDEX IF NOT EXISTS documents_day ON documents(published_day);
CREATE TABLE IF NOT EXISTS signatures (doc_id TEXT PRIMARY KEY, sig BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
    vid INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, tokenize='porter unicode61 remove_diacritics 2'
);
-- A watched feed's polling state as JSON (rag/ingestion/watcher.py): validators, per-entry hashes,
-- last poll, success and error. Kept beside the index so it survives restarts.
CREATE TABLE IF NOT EXISTS feed_state (url TEXT PRIMARY KEY, state TEXT NOT NULL);
-- The live vector segments (rag/storage/segments.py): immutable folders under segments/.
CREATE TABLE IF NOT EXISTS segments (
    name TEXT PRIMARY KEY, structure TEXT NOT NULL, vectors INTEGER NOT NULL, bytes INTEGER NOT NULL,
    generation INTEGER NOT NULL  -- the generation that wrote it (a commit or a merge)
);
-- Chunks deleted or replaced whose vectors still sit in a segment; a merge drops both.
CREATE TABLE IF NOT EXISTS tombstones (vid INTEGER PRIMARY KEY);
-- Publication times (epoch seconds, NULL undated) of chunks whose article's date changed after
-- their segment recorded it; they override the segment's times.npy until the chunk is deleted.
CREATE TABLE IF NOT EXISTS redated (vid INTEGER PRIMARY KEY, time INTEGER);
"""


@dataclass(frozen=True)
class DocRow:
    id: str
    title: str | None
    source: str | None
    published: str | None
    content_hash: str
    chunk_count: int
    dup_of: str | None = None
    author: str | None = None

    @property
    def story(self) -> str:
        """Near-duplicates share a story key: the first article's id."""
        return self.dup_of or self.id


@dataclass(frozen=True)
class Filters:
    """Metadata limits on a search. The date limits follow the one rule of `rag.dates`: undated
    articles are kept or left out by `include_undated` alone."""

    source: str | None = None  # prefix of the article's source (a folder, a site)
    doc_ids: tuple[str, ...] | None = None
    published_after: str | None = None  # ISO date, inclusive
    published_before: str | None = None  # ISO date, inclusive
    include_undated: bool = True
    # Nothing published after this (rag.dates.cutoff: a date covers its day, a datetime ends at it).
    # SQL limits by day; `admits` then drops what a datetime cutoff's own day published after it.
    as_of: str | None = None

    def __bool__(self) -> bool:
        limits = (self.source, self.doc_ids, self.published_after, self.published_before, self.as_of)
        return any(v is not None for v in limits) or not self.include_undated

    @property
    def needs_sql(self) -> bool:
        """Limits only the store can check (source, article ids); dates are checked in memory."""
        return self.source is not None or self.doc_ids is not None

    def within(self) -> TimeRange | None:
        """The date limits as a time range in seconds; None when there are none."""
        if self.as_of is None and self.published_after is None and self.published_before is None:
            return None if self.include_undated else TimeRange(undated=False)
        ends = [dates.last_second(self.as_of)] if self.as_of else []
        if self.published_before:
            ends.append(dates.day_end(date.fromisoformat(self.published_before[:10])))
        start = dates.day_start(date.fromisoformat(self.published_after[:10])) if self.published_after else None
        return TimeRange(start, min(ends) if ends else None, self.include_undated)

    def admits(self, doc: "DocRow") -> bool:
        """The part of the as-of limit SQL's day granularity cannot say (the time of day)."""
        return self.as_of is None or len(self.as_of) == 10 or not dates.later_than(doc.published, self.as_of)

    def sql(self) -> tuple[str, list]:
        """A WHERE clause over `documents d` and its parameters."""
        where, params = [], []
        if self.source is not None:
            where.append("substr(d.source, 1, length(?)) = ?")
            params += [self.source, self.source]
        if self.doc_ids is not None:
            where.append(f"d.id IN ({','.join('?' * len(self.doc_ids))})")
            params += list(self.doc_ids)
        as_of_day = self.as_of[:10] if self.as_of else None
        for op, value in ((">=", self.published_after), ("<=", self.published_before), ("<=", as_of_day)):
            if value is not None:
                undated = " OR d.published_day IS NULL" if self.include_undated else ""
                where.append(f"(d.published_day {op} ?{undated})")
                params.append(value)
        if not self.include_undated:
            where.append("d.published_day IS NOT NULL")
        return (" AND ".join(where) or "1"), params


@dataclass(frozen=True)
class ChunkRow:
    vid: int
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str
    last_ordinal: int | None = None  # set when neighbouring chunks were merged into this span

    @property
    def chunk_id(self) -> str:
        last = self.last_ordinal
        return f"{self.doc_id}#{self.ordinal}" if last in (None, self.ordinal) else f"{self.doc_id}#{self.ordinal}-{last}"


@dataclass(frozen=True)
class SegmentRow:
    """One live vector segment as the store records it."""

    name: str
    structure: str  # flat | ivf | ivfpq
    vectors: int  # stored in the segment, tombstoned ones included
    bytes: int  # on disk
    generation: int


DOC_COLS = "id, title, source, published, content_hash, chunk_count, dup_of, author"
_NCOLS = 8


class Store:
    """Thread-safe access: one connection per thread, WAL so readers never wait for the writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self.connect() as conn:
            conn.executescript(SCHEMA)
            self._add_author_column(conn)

    @staticmethod
    def _add_author_column(conn: sqlite3.Connection) -> None:
        """An index made before authors were kept gains the column (NULL: not stated)."""
        if "author" in {r[1] for r in conn.execute("PRAGMA table_info(documents)")}:
            return
        try:
            conn.execute("ALTER TABLE documents ADD COLUMN author TEXT")
        except sqlite3.OperationalError:  # another process added it first
            if "author" not in {r[1] for r in conn.execute("PRAGMA table_info(documents)")}:
                raise

    def connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.row_factory = sqlite3.Row
            self._local.conn = conn
        return conn

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # --- reads -------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.connect().execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else row[0]

    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    def counts(self) -> tuple[int, int]:
        conn = self.connect()
        docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def documents(self) -> list[DocRow]:
        rows = self.connect().execute(
            f"SELECT {DOC_COLS} FROM documents ORDER BY id"
        )
        return [DocRow(*r) for r in rows]

    def document(self, doc_id: str) -> tuple[DocRow, str] | None:
        r = self.connect().execute(
            f"SELECT {DOC_COLS}, text FROM documents WHERE id=?",
            (doc_id,),
        ).fetchone()
        return None if r is None else (DocRow(*tuple(r)[:_NCOLS]), r[_NCOLS])

    def documents_by_id(self, ids: Iterable[str]) -> dict[str, DocRow]:
        ids = list(set(ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.connect().execute(
            f"SELECT {DOC_COLS} FROM documents WHERE id IN ({marks})",
            ids,
        )
        return {r[0]: DocRow(*r) for r in rows}

    def hashes(self) -> dict[str, str]:
        return dict(self.connect().execute("SELECT id, content_hash FROM documents").fetchall())

    def feed_states(self) -> dict[str, str]:
        """Each watched feed's stored state (JSON), by feed URL."""
        return dict(self.connect().execute("SELECT url, state FROM feed_state").fetchall())

    def chunks_by_vid(self, vids: list[int]) -> dict[int, ChunkRow]:
        if not vids:
            return {}
        marks = ",".join("?" * len(vids))
        rows = self.connect().execute(
            f'SELECT vid, doc_id, ordinal, start, "end", text FROM chunks WHERE vid IN ({marks})', vids
        )
        return {r[0]: ChunkRow(*r) for r in rows}

    def chunk_vids(self, doc_id: str) -> list[int]:
        rows = self.connect().execute("SELECT vid FROM chunks WHERE doc_id=?", (doc_id,))
        return [r[0] for r in rows]

    def all_documents_text(self) -> Iterable[tuple[DocRow, str]]:
        rows = self.connect().execute(
            f"SELECT {DOC_COLS}, text FROM documents ORDER BY id"
        )
        for r in rows:
            yield DocRow(*tuple(r)[:_NCOLS]), r[_NCOLS]

    def lexical(
        self, match: str, k: int, filters: Filters | None = None, after_vid: int | None = None
    ) -> list[tuple[int, float]]:
        """(vid, score) by FTS5's BM25, best first; scores negated so higher is better.
        `after_vid`: only chunks added after that row id (those a bm25s base does not hold)."""
        if after_vid is not None and filters:
            where, params = filters.sql()
            rows = self.connect().execute(
                "SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c ON c.vid = f.rowid "
                f"JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND f.rowid > ? AND {where} "
                "ORDER BY s LIMIT ?",
                [match, after_vid, *params, k],
            )
        elif after_vid is not None:
            rows = self.connect().execute(
                "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid > ? "
                "ORDER BY s LIMIT ?",
                (match, after_vid, k),
            )
        elif filters:
            where, params = filters.sql()
            if filters.doc_ids is not None:
                # FTS5 meets a rowid range itself: only the listed articles' rows are scored, not
                # every row of the archive a word matches (a commit's standing questions ask so).
                lo, hi = self.vid_range(filters.doc_ids)
                if lo is None:
                    return []
                where, params = f"f.rowid BETWEEN ? AND ? AND {where}", [lo, hi, *params]
            rows = self.connect().execute(
                "SELECT f.rowid, bm25(chunks_fts) AS s FROM chunks_fts f JOIN chunks c ON c.vid = f.rowid "
                f"JOIN documents d ON d.id = c.doc_id WHERE chunks_fts MATCH ? AND {where} ORDER BY s LIMIT ?",
                [match, *params, k],
            )
        else:
            rows = self.connect().execute(
                "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
                (match, k),
            )
        return [(int(r[0]), -float(r[1])) for r in rows]

    def term_frequency(self, word: str) -> int:
        """How many chunks contain `word` (FTS5 applies its own stemming, as in search)."""
        match = '"' + word.replace('"', '""') + '"'
        row = self.connect().execute("SELECT count(*) FROM chunks_fts WHERE chunks_fts MATCH ?", (match,)).fetchone()
        return int(row[0])

    def vid_range(self, doc_ids: Iterable[str]) -> tuple[int | None, int | None]:
        """The lowest and highest chunk id of these articles ((None, None) when they have none)."""
        ids = list(doc_ids)
        if not ids:
            return None, None
        row = self.connect().execute(
            f"SELECT min(vid), max(vid) FROM chunks WHERE doc_id IN ({','.join('?' * len(ids))})", ids
        ).fetchone()
        return row[0], row[1]

    def filtered_vids(self, filters: Filters) -> list[int]:
        where, params = filters.sql()
        rows = self.connect().execute(f"SELECT c.vid FROM chunks c JOIN documents d ON d.id = c.doc_id WHERE {where}", params)
        return [r[0] for r in rows]

    def times_of(self, vids: np.ndarray) -> np.ndarray:
        """Each chunk's publication time (seconds; NO_DATE undated or no longer stored), in order:
        for segments and word-index bases written before they kept their own times."""
        out = np.full(len(vids), NO_DATE, np.int64)
        if not len(vids):
            return out
        conn = self.connect()
        found: dict[int, int | None] = {}
        step = 30_000  # SQLite's bound on parameters
        for i in range(0, len(vids), step):
            part = [int(v) for v in vids[i : i + step]]
            rows = conn.execute(
                f"SELECT c.vid, d.published FROM chunks c JOIN documents d ON d.id = c.doc_id "
                f"WHERE c.vid IN ({','.join('?' * len(part))})", part)
            found.update((vid, dates.seconds(p)) for vid, p in rows)
        for i, v in enumerate(vids.tolist()):
            t = found.get(v)
            if t is not None:
                out[i] = t
        return out

    def redated(self) -> tuple[np.ndarray, np.ndarray]:
        """(vids ascending, times) of chunks redated after their segment was written."""
        rows = self.connect().execute("SELECT vid, time FROM redated ORDER BY vid").fetchall()
        vids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        times = np.fromiter((NO_DATE if r[1] is None else r[1] for r in rows), np.int64, len(rows))
        return vids, times

    def story_members(self, stories: Iterable[str]) -> dict[str, list[str]]:
        """Every stored article of each story (the first article and its near-duplicates)."""
        stories = list(set(stories))
        if not stories:
            return {}
        marks = ",".join("?" * len(stories))
        rows = self.connect().execute(
            f"SELECT id, coalesce(dup_of, id) FROM documents WHERE id IN ({marks}) OR dup_of IN ({marks}) ORDER BY id",
            stories + stories,
        )
        out: dict[str, list[str]] = {}
        for doc_id, story in rows:
            out.setdefault(story, []).append(doc_id)
        return out

    def span(self, doc_id: str, start: int, end: int) -> str:
        """document.text[start:end], read without loading the whole article."""
        row = self.connect().execute("SELECT substr(text, ?, ?) FROM documents WHERE id=?", (start + 1, end - start, doc_id)).fetchone()
        return "" if row is None else row[0]

    def segment_state(self) -> tuple[int, list[SegmentRow], list[int]]:
        """(generation, live segments, tombstoned vids), read in one transaction so they agree."""
        conn = self.connect()
        own = not conn.in_transaction
        if own:
            conn.execute("BEGIN")
        try:
            gen = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
            segs = [SegmentRow(*r) for r in conn.execute(
                "SELECT name, structure, vectors, bytes, generation FROM segments ORDER BY generation, name")]
            dead = [r[0] for r in conn.execute("SELECT vid FROM tombstones ORDER BY vid")]
        finally:
            if own:
                conn.execute("COMMIT")
        return (int(gen[0]) if gen else 0), segs, dead

    def signatures(self) -> dict[str, bytes]:
        return dict(self.connect().execute("SELECT doc_id, sig FROM signatures").fetchall())

    # --- writes (call inside `transaction`) --------------------------------------------------
    def next_vid(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
        return (row[0] if row else 0) + 1

    @staticmethod
    def delete_document(conn: sqlite3.Connection, doc_id: str) -> list[int]:
        rows = conn.execute("SELECT vid FROM chunks WHERE doc_id=?", (doc_id,)).fetchall()
        conn.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(r[0],) for r in rows])
        conn.executemany("DELETE FROM redated WHERE vid=?", [(r[0],) for r in rows])
        conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        conn.execute("DELETE FROM signatures WHERE doc_id=?", (doc_id,))
        return [r[0] for r in rows]

    @staticmethod
    def add_segment(conn: sqlite3.Connection, seg: "SegmentRow") -> None:
        conn.execute("INSERT INTO segments(name, structure, vectors, bytes, generation) VALUES (?,?,?,?,?)",
                     (seg.name, seg.structure, seg.vectors, seg.bytes, seg.generation))

    @staticmethod
    def remove_segments(conn: sqlite3.Connection, names: Iterable[str]) -> None:
        conn.executemany("DELETE FROM segments WHERE name=?", [(n,) for n in names])

    @staticmethod
    def add_tombstones(conn: sqlite3.Connection, vids: Iterable[int]) -> None:
        conn.executemany("INSERT OR IGNORE INTO tombstones(vid) VALUES (?)", [(int(v),) for v in vids])

    @staticmethod
    def drop_tombstones(conn: sqlite3.Connection, vids: Iterable[int]) -> None:
        conn.executemany("DELETE FROM tombstones WHERE vid=?", [(int(v),) for v in vids])

    @staticmethod
    def delete_all(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM segments")
        conn.execute("DELETE FROM tombstones")
        conn.execute("DELETE FROM redated")
        conn.execute("DELETE FROM chunks_fts")
        conn.execute("DELETE FROM chunks")
        conn.execute("DELETE FROM documents")
        conn.execute("DELETE FROM signatures")

    @staticmethod
    def insert_document(
        conn: sqlite3.Connection, doc: DocRow, text: str, chunks: list[ChunkRow], sig: bytes | None = None
    ) -> None:
        conn.execute(
            "INSERT INTO documents(id, title, source, published, text, content_hash, chunk_count, published_day, dup_of,"
            " author) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (doc.id, doc.title, doc.source, doc.published, text, doc.content_hash, doc.chunk_count,
             iso_day(doc.published), doc.dup_of, doc.author),
        )
        if sig is not None:
            conn.execute("INSERT INTO signatures(doc_id, sig) VALUES (?, ?)", (doc.id, sig))
        conn.executemany(
            'INSERT INTO chunks(vid, doc_id, ordinal, start, "end", text) VALUES (?,?,?,?,?,?)',
            [(c.vid, c.doc_id, c.ordinal, c.start, c.end, c.text) for c in chunks],
        )
        conn.executemany(
            "INSERT INTO chunks_fts(rowid, body) VALUES (?, ?)",
            [(c.vid, context_text(doc.title, c.text)) for c in chunks],
        )

    @staticmethod
    def update_metadata(conn: sqlite3.Connection, doc: DocRow) -> bool:
        """New source, date, author and hash for a stored document whose text and title are unchanged
        (its chunks, vectors and word index stay as they are; a new date is recorded for its
        chunks in `redated`, which readers apply over their segments' times). True if redated."""
        old = conn.execute("SELECT published FROM documents WHERE id=?", (doc.id,)).fetchone()
        conn.execute(
            "UPDATE documents SET source=?, published=?, published_day=?, content_hash=?, author=? WHERE id=?",
            (doc.source, doc.published, iso_day(doc.published), doc.content_hash, doc.author, doc.id),
        )
        if old is not None and dates.seconds(old[0]) != dates.seconds(doc.published):
            conn.execute(
                "INSERT OR REPLACE INTO redated(vid, time) SELECT vid, ? FROM chunks WHERE doc_id=?",
                (dates.seconds(doc.published), doc.id),
            )
            return True
        return False

    @staticmethod
    def set_feed_state(conn: sqlite3.Connection, url: str, state: str) -> None:
        conn.execute(
            "INSERT INTO feed_state(url, state) VALUES(?, ?) ON CONFLICT(url) DO UPDATE SET state=excluded.state", (url, state)
        )

    @staticmethod
    def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))
