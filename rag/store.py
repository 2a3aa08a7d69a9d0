"""The chunk store: documents, chunk texts and offsets, and an FTS5 word index, in SQLite.

SQLite's transaction is the commit point of the whole index: it records which FAISS file
(generation) matches its rows, so a crash at any moment leaves a consistent last-good index.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .chunking import context_text

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    id TEXT PRIMARY KEY, title TEXT, source TEXT, published TEXT, text TEXT NOT NULL,
    content_hash TEXT NOT NULL, chunk_count INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    vid INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id, ordinal);
CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(
    body, tokenize='porter unicode61 remove_diacritics 2'
);
"""


@dataclass(frozen=True)
class DocRow:
    id: str
    title: str | None
    source: str | None
    published: str | None
    content_hash: str
    chunk_count: int


@dataclass(frozen=True)
class ChunkRow:
    vid: int
    doc_id: str
    ordinal: int
    start: int
    end: int
    text: str

    @property
    def chunk_id(self) -> str:
        return f"{self.doc_id}#{self.ordinal}"


class Store:
    """Thread-safe access: one connection per thread, WAL so readers never wait for the writer."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        with self.connect() as conn:
            conn.executescript(SCHEMA)

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
            "SELECT id, title, source, published, content_hash, chunk_count FROM documents ORDER BY id"
        )
        return [DocRow(*r) for r in rows]

    def document(self, doc_id: str) -> tuple[DocRow, str] | None:
        r = self.connect().execute(
            "SELECT id, title, source, published, content_hash, chunk_count, text FROM documents WHERE id=?",
            (doc_id,),
        ).fetchone()
        return None if r is None else (DocRow(*tuple(r)[:6]), r[6])

    def documents_by_id(self, ids: Iterable[str]) -> dict[str, DocRow]:
        ids = list(set(ids))
        if not ids:
            return {}
        marks = ",".join("?" * len(ids))
        rows = self.connect().execute(
            f"SELECT id, title, source, published, content_hash, chunk_count FROM documents WHERE id IN ({marks})",
            ids,
        )
        return {r[0]: DocRow(*r) for r in rows}

    def hashes(self) -> dict[str, str]:
        return dict(self.connect().execute("SELECT id, content_hash FROM documents").fetchall())

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
            "SELECT id, title, source, published, content_hash, chunk_count, text FROM documents ORDER BY id"
        )
        for r in rows:
            yield DocRow(*tuple(r)[:6]), r[6]

    def lexical(self, match: str, k: int) -> list[tuple[int, float]]:
        """(vid, score) by FTS5's BM25, best first; scores negated so higher is better."""
        rows = self.connect().execute(
            "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? ORDER BY s LIMIT ?",
            (match, k),
        )
        return [(int(r[0]), -float(r[1])) for r in rows]

    # --- writes (call inside `transaction`) --------------------------------------------------
    def next_vid(self, conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name='chunks'").fetchone()
        return (row[0] if row else 0) + 1

    @staticmethod
    def delete_document(conn: sqlite3.Connection, doc_id: str) -> list[int]:
        rows = conn.execute("SELECT vid FROM chunks WHERE doc_id=?", (doc_id,)).fetchall()
        conn.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(r[0],) for r in rows])
        conn.execute("DELETE FROM chunks WHERE doc_id=?", (doc_id,))
        conn.execute("DELETE FROM documents WHERE id=?", (doc_id,))
        return [r[0] for r in rows]

    @staticmethod
    def delete_all(conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM chunks_fts")
        conn.execute("DELETE FROM chunks")
        conn.execute("DELETE FROM documents")

    @staticmethod
    def insert_document(conn: sqlite3.Connection, doc: DocRow, text: str, chunks: list[ChunkRow]) -> None:
        conn.execute(
            "INSERT INTO documents(id, title, source, published, text, content_hash, chunk_count) VALUES (?,?,?,?,?,?,?)",
            (doc.id, doc.title, doc.source, doc.published, text, doc.content_hash, doc.chunk_count),
        )
        conn.executemany(
            'INSERT INTO chunks(vid, doc_id, ordinal, start, "end", text) VALUES (?,?,?,?,?,?)',
            [(c.vid, c.doc_id, c.ordinal, c.start, c.end, c.text) for c in chunks],
        )
        conn.executemany(
            "INSERT INTO chunks_fts(rowid, body) VALUES (?, ?)",
            [(c.vid, context_text(doc.title, c.text)) for c in chunks],
        )

    @staticmethod
    def set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
        conn.execute("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value", (key, value))
