"""watches.sqlite: the standing questions, the articles each has been told about, every
delivery with its state, and each question's embedding (per model, so a commit's pre-screen is
one matrix product). SQLite in WAL mode, committed before anything is sent, so a kill or a
restart loses no delivery (a delivery in flight is sent again: at-least-once, same id)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

FILE = "watches.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS watches (
    id TEXT PRIMARY KEY, question TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
    min_relevance REAL, filters TEXT NOT NULL, created TEXT NOT NULL, last TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, watch_id TEXT NOT NULL, type TEXT NOT NULL, created TEXT NOT NULL,
    payload TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL, last_status INTEGER, last_error TEXT, delivered TEXT
);
CREATE INDEX IF NOT EXISTS events_due ON events (status, next_at);
CREATE INDEX IF NOT EXISTS events_watch ON events (watch_id, created);
-- A question's embedding (float32) by what made it (`model`: the embedder's identity and CPU
-- class), so a commit encodes only questions it has not seen; another model encodes them anew.
CREATE TABLE IF NOT EXISTS vectors (
    watch_id TEXT NOT NULL, model TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (watch_id, model)
);
"""


@dataclass(frozen=True)
class WatchRow:
    id: str
    question: str
    url: str
    secret: str
    min_relevance: float | None
    filters: dict
    created: str
    last: dict | None  # the answer its next notification updates: {event_id, answer, passages}


@dataclass(frozen=True)
class EventRow:
    id: str
    watch_id: str
    type: str
    created: str
    payload: str  # the exact JSON body sent, every attempt the same bytes
    status: str
    attempts: int
    next_at: float | None
    last_status: int | None
    last_error: str | None
    delivered: str | None


_WATCH_COLS = "id, question, url, secret, min_relevance, filters, created, last"
_EVENT_COLS = "id, watch_id, type, created, payload, status, attempts, next_at, last_status, last_error, delivered"


class WatchStore:
    """One connection shared by the threads of a process, behind a lock."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / FILE
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None

    @property
    def exists(self) -> bool:
        return self._conn is not None or self.path.exists()

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.executescript(_SCHEMA)
                self._conn = conn
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    # --- watches -------------------------------------------------------------------------------
    def add_watch(self, w: WatchRow) -> None:
        with self._db() as db:
            db.execute(
                f"INSERT INTO watches ({_WATCH_COLS}) VALUES (?,?,?,?,?,?,?,?)",
                (w.id, w.question, w.url, w.secret, w.min_relevance, json.dumps(w.filters), w.created,
                 None if w.last is None else json.dumps(w.last)),
            )

    def watches(self) -> list[WatchRow]:
        if not self.exists:
            return []
        with self._db() as db:
            rows = db.execute(f"SELECT {_WATCH_COLS} FROM watches ORDER BY created, id").fetchall()
        return [_watch(r) for r in rows]

    def watch(self, watch_id: str) -> WatchRow | None:
        if not self.exists:
            return None
        with self._db() as db:
            r = db.execute(f"SELECT {_WATCH_COLS} FROM watches WHERE id = ?", (watch_id,)).fetchone()
        return _watch(r) if r else None

    def delete_watch(self, watch_id: str) -> bool:
        """The watch and its deliveries not yet made; sent ones go too (they belong to it)."""
        if not self.exists:
            return False
        with self._db() as db:
            found = db.execute("DELETE FROM watches WHERE id = ?", (watch_id,)).rowcount > 0
            db.execute("DELETE FROM events WHERE watch_id = ?", (watch_id,))
            db.execute("DELETE FROM vectors WHERE watch_id = ?", (watch_id,))
        return found

    def vectors(self, model: str) -> dict[str, bytes]:
        """The stored question embeddings `model` made, by watch id."""
        if not self.exists:
            return {}
        with self._db() as db:
            return dict(db.execute("SELECT watch_id, vector FROM vectors WHERE model = ?", (model,)).fetchall())

    def set_vectors(self, model: str, rows: list[tuple[str, bytes]]) -> None:
        """Keep these question embeddings (a watch deleted meanwhile keeps none)."""
        if not rows:
            return
        with self._db() as db:
            db.executemany(
                "INSERT OR REPLACE INTO vectors (watch_id, model, vector) SELECT ?, ?, ? "
                "WHERE EXISTS (SELECT 1 FROM watches WHERE id = ?)", [(w, model, v, w) for w, v in rows],
            )

    def notified_counts(self) -> dict[str, int]:
        if not self.exists:
            return {}
        with self._db() as db:
            rows = db.execute("SELECT watch_id, COUNT(*) FROM events WHERE type = 'watch.answer' GROUP BY watch_id")
            return dict(rows.fetchall())

    # --- events --------------------------------------------------------------------------------
    def add_event(self, e: EventRow, last: dict | None = None) -> None:
        """Queue a delivery; `last`: the answer it carries, which the watch's next one updates."""
        self.add_events([(e, last)])

    def add_events(self, queued: list[tuple[EventRow, dict | None]]) -> None:
        """Queue deliveries in one transaction (one sync to disk for a commit's notifications)."""
        with self._db() as db:
            for e, last in queued:
                db.execute(
                    f"INSERT INTO events ({_EVENT_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (e.id, e.watch_id, e.type, e.created, e.payload, e.status, e.attempts, e.next_at, e.last_status,
                     e.last_error, e.delivered),
                )
                if last is not None:
                    db.execute("UPDATE watches SET last = ? WHERE id = ?", (json.dumps(last), e.watch_id))

    def event(self, event_id: str) -> EventRow | None:
        if not self.exists:
            return None
        with self._db() as db:
            r = db.execute(f"SELECT {_EVENT_COLS} FROM events WHERE id = ?", (event_id,)).fetchone()
        return EventRow(*r) if r else None

    def events(self, watch_id: str, after: str | None = None) -> list[EventRow]:
        """Oldest first; `after`: only those queued after that event."""
        with self._db() as db:
            if after is None:
                rows = db.execute(
                    f"SELECT {_EVENT_COLS} FROM events WHERE watch_id = ? ORDER BY rowid", (watch_id,)
                ).fetchall()
            else:
                rows = db.execute(
                    f"SELECT {_EVENT_COLS} FROM events WHERE watch_id = ? AND rowid > "
                    "COALESCE((SELECT rowid FROM events WHERE id = ?), 0) ORDER BY rowid", (watch_id, after),
                ).fetchall()
        return [EventRow(*r) for r in rows]

    def due(self, now: float, limit: int = 100) -> list[EventRow]:
        if not self.exists:
            return []
        with self._db() as db:
            rows = db.execute(
                f"SELECT {_EVENT_COLS} FROM events WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, rowid "
                "LIMIT ?", (now, limit),
            ).fetchall()
        return [EventRow(*r) for r in rows]

    def next_due(self) -> float | None:
        if not self.exists:
            return None
        with self._db() as db:
            r = db.execute("SELECT MIN(next_at) FROM events WHERE status = 'pending'").fetchone()
        return r[0] if r else None

    def record_attempt(
        self, event_id: str, status: str, http_status: int | None, error: str | None, next_at: float | None
    ) -> None:
        """The outcome of one attempt; an event already delivered or failed stays so (another
        process's attempt, or one that outlived a restart, may finish late)."""
        delivered = _iso(time.time()) if status == "delivered" else None
        with self._db() as db:
            db.execute(
                "UPDATE events SET status = ?, attempts = attempts + 1, last_status = ?, last_error = ?, next_at = ?, "
                "delivered = ? WHERE id = ? AND status = 'pending'", (status, http_status, error, next_at, delivered, event_id),
            )


def _watch(r: tuple) -> WatchRow:
    return WatchRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], None if r[7] is None else json.loads(r[7]))


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
