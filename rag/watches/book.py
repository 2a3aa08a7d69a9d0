"""`Watches`: create, list and delete standing questions, evaluate them after each commit, and
hand what they find to the deliverer.

A commit is evaluated in two steps: every watch's stored question vector against the vectors of
the new chunks in one matrix product (rag/watches/screen.py), then the full rule (a search of the
new articles, the answer and its verification) only for the watches whose best new chunk reaches
their relevance bar; the others would be refused by it anyway."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Protocol

import numpy as np

from ..config import Settings
from ..ingestion.fetch import FetchError, FetchPolicy, check_url
from ..schema import Passage, Query, QueryResponse
from . import screen
from .deliver import Deliverer
from ..schema.watches import (
    MAX_SECRET_BYTES, SECRET_PREFIX, Notification, PreviousAnswer, WatchCreated, WatchEventOut, WatchFilters, WatchIn,
    WatchOut,
)
from .store import EventRow, WatchRow, WatchStore, _iso


class WatchError(ValueError):
    """A watch that cannot be made (its webhook URL refused); the message says why."""


class _Service(Protocol):
    """What watches need of the service (rag.service.Service), named here so this package does
    not import the layer above it."""

    settings: Settings
    index: Any
    embedder: Any

    def ask(self, query: Query, *, vector: np.ndarray | None = None) -> QueryResponse: ...


# A commit's notifications are written to watches.sqlite together (one sync to disk), and handed
# to the deliverer, once this many are waiting or this many seconds after the first of them.
FLUSH_EVERY = 64
FLUSH_S = 0.25


class Watches:
    def __init__(self, service: _Service) -> None:
        self.service = service
        self.settings = service.settings
        self.store = WatchStore(service.settings.index_dir)
        self.policy = FetchPolicy.from_settings(service.settings)
        self.deliverer = Deliverer(self.store, self.policy, self.settings.watch_retry_s, self.settings.watch_attempts)
        if self.store.next_due() is not None:  # deliveries left by the last run
            self.deliverer.kick()

    # --- the standing questions ------------------------------------------------------------------
    def add(self, watch: WatchIn) -> WatchCreated:
        """A new watch; WatchError when its URL is not http(s), does not resolve, or is private
        (unless RAG_FETCH_ALLOW_PRIVATE or RAG_FETCH_ALLOW_HOSTS allow it)."""
        try:
            check_url(watch.url, self.policy.allow_private, self.policy.allow_hosts)
        except FetchError as exc:
            raise WatchError(f"webhook URL refused: {exc}") from None
        secret = watch.secret or SECRET_PREFIX + base64.b64encode(secrets.token_bytes(MAX_SECRET_BYTES // 2)).decode()
        row = WatchRow(
            "w_" + uuid.uuid4().hex[:16], watch.question, watch.url, secret, watch.min_relevance,
            watch.filters.model_dump(mode="json"), _iso(time.time()), None,
        )
        vector = self._encode([row.question])[0]
        found = self.evaluate(row, None, vector)  # what the archive says now: the first notification updates it
        if found is not None:
            row = dataclasses.replace(row, last=_last(None, found))
        self.store.add_watch(row)
        self.store.set_vectors(self._model, [(row.id, vector.tobytes())])
        return WatchCreated(**_out(row, 0).model_dump(), secret=secret)

    def list(self) -> list[WatchOut]:
        counts = self.store.notified_counts()
        return [_out(w, counts.get(w.id, 0)) for w in self.store.watches()]

    def get(self, watch_id: str) -> WatchOut | None:
        row = self.store.watch(watch_id)
        return None if row is None else _out(row, self.store.notified_counts().get(watch_id, 0))

    def delete(self, watch_id: str) -> bool:
        return self.store.delete_watch(watch_id)

    def events(self, watch_id: str, after: str | None = None) -> list[WatchEventOut] | None:
        """Its deliveries, oldest first; None for an unknown watch."""
        if self.store.watch(watch_id) is None:
            return None
        return [_event_out(e) for e in self.store.events(watch_id, after)]

    # --- evaluation at commit --------------------------------------------------------------------
    def committed(self, doc_ids: Iterable[str]) -> list[str]:
        """Evaluate every watch against these just-committed articles only; queue a delivery for
        each watch they give a new verified answer. Returns the ids of the events queued."""
        ids = list(dict.fromkeys(doc_ids))
        if not ids or not self.store.exists:
            return []
        watches = self.store.watches()
        if not watches:
            return []
        rows = self.service.index.store.documents_by_id(ids)
        # A near-duplicate of an earlier article (the fold behind `also_in`) says nothing new.
        fresh = [d for d in ids if d in rows and rows[d].dup_of is None]
        if not fresh:
            return []
        vectors = self._vectors(watches)
        go = self._screen(watches, vectors, [rows[d] for d in fresh])
        as_of = datetime.now(timezone.utc)  # one "now" for the commit's watches
        queue = _Queue(self)
        try:
            for i in np.flatnonzero(go):
                found = self.evaluate(watches[i], fresh, vectors[i], as_of)
                if found is not None:
                    queue.add(watches[i], found)
        finally:
            queue.flush()  # what was found before a failure is still sent
        return queue.ids

    def evaluate(
        self, watch: WatchRow, doc_ids: list[str] | None, vector: np.ndarray | None = None,
        as_of: datetime | None = None,
    ) -> Notification | None:
        """The notification the articles `doc_ids` (None: the whole archive) give `watch`, or None
        when they do not support a verified answer, or repeat the watch's last one. `vector`: the
        question's embedding, when the caller has it."""
        f = WatchFilters.model_validate(watch.filters)
        query = Query(
            question=watch.question, k=self.settings.top_k, source=f.source,
            published_after=f.published_after, published_before=f.published_before,
            include_undated=f.include_undated, recency=0.0, time_window=False, as_of=as_of,
        )
        if doc_ids is not None:  # not validated: a commit may hold more articles than a request may name
            query = query.model_copy(update={"doc_ids": doc_ids})
        if vector is None:
            vector = self._encode([watch.question])[0]
        resp = self.service.ask(query, vector=vector)
        answer = resp.answer
        if not resp.answerable or answer is None or not answer.verified or not answer.citations:
            return None
        cited = [p for p in resp.passages if p.rank in answer.citations]
        if watch.min_relevance is not None and self._relevance(vector, cited) < watch.min_relevance:
            return None
        previous = self._previous(watch)
        if previous is not None and _same(previous.answer.text, answer.text):
            return None
        return Notification(
            watch_id=watch.id, question=watch.question, documents=list(dict.fromkeys(p.doc_id for p in cited)),
            answer=answer, passages=cited, updates=previous,
        )

    def test(self, watch_id: str) -> tuple[bool, str] | None:
        """Send one signed `watch.test` delivery now, with the answer the whole archive gives; None
        for an unknown watch, else (accepted, what happened). It is listed in the events."""
        watch = self.store.watch(watch_id)
        if watch is None:
            return None
        found = self.evaluate(dataclasses.replace(watch, last=None), None)
        data = found.model_dump(mode="json") if found else {"watch_id": watch.id, "question": watch.question, "answer": None}
        event_id = self._queue(watch, "watch.test", data, schedule=False)
        event = self.store.event(event_id)
        assert event is not None
        return self.deliverer.deliver(event)

    def close(self) -> None:
        self.deliverer.stop()
        self.store.close()

    # --- parts -----------------------------------------------------------------------------------
    def _event(
        self, watch: WatchRow, kind: str, data: Notification | dict, schedule: bool = True
    ) -> tuple[EventRow, dict | None]:
        """A delivery ready to be written, and the answer the watch's next one will update."""
        now = time.time()
        event_id = "msg_" + uuid.uuid4().hex
        body = data.model_dump(mode="json") if isinstance(data, Notification) else data
        payload = json.dumps(
            {"type": kind, "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(), "data": body},
            ensure_ascii=False, separators=(",", ":"),
        )
        last = _last(event_id, data) if isinstance(data, Notification) and kind == "watch.answer" else None
        row = EventRow(
            event_id, watch.id, kind, _iso(now), payload, "pending", 0, now if schedule else None, None, None, None
        )
        return row, last

    def _queue(self, watch: WatchRow, kind: str, data: Notification | dict, schedule: bool = True) -> str:
        event, last = self._event(watch, kind, data, schedule)
        self.store.add_event(event, last)
        return event.id

    @staticmethod
    def _previous(watch: WatchRow) -> PreviousAnswer | None:
        return None if watch.last is None else PreviousAnswer.model_validate(watch.last)

    @property
    def _model(self) -> str:
        """What makes question vectors: the embedder's identity (weights, backend, export, runtime)."""
        ident = dataclasses.asdict(self.service.embedder.identity)
        ident.pop("path", None)  # the same weights wherever they were loaded from
        return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:32]

    def _encode(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.service.embedder.encode(texts), dtype=np.float32)

    def _vectors(self, watches: list[WatchRow]) -> np.ndarray:
        """The watches' question vectors (rows, in order): stored ones, and the others encoded
        now in one call and stored (watches made by another model, or before vectors were kept)."""
        model = self._model
        stored = self.store.vectors(model)
        missing = [w for w in watches if w.id not in stored]
        if missing:
            made = self._encode([w.question for w in missing])
            self.store.set_vectors(model, [(w.id, v.tobytes()) for w, v in zip(missing, made)])
            stored |= {w.id: v.tobytes() for w, v in zip(missing, made)}
        return np.stack([np.frombuffer(stored[w.id], dtype=np.float32) for w in watches])

    def _bar(self, watch: WatchRow) -> float:
        """The cosine the best new chunk must reach for the full rule to notify: the floor every
        question's best passage must pass, or the watch's own stricter one."""
        return max(self.settings.min_relevance, watch.min_relevance or 0.0)

    def _screen(self, watches: list[WatchRow], vectors: np.ndarray, docs: list[Any]) -> np.ndarray:
        """Which watches go on to the full rule (bool per watch): those whose best new chunk
        among the articles their filters admit reaches their bar (rag/watches/screen.py)."""
        index = self.service.index
        owner = {vid: d for d in docs for vid in index.store.chunk_vids(d.id)}
        held = index.vectors_present(list(owner))  # the vectors the search scores, as stored
        vids = list(held)
        chunks = np.stack([held[v] for v in vids]) if vids else np.zeros((0, vectors.shape[1]), np.float32)
        best = np.full(len(watches), -np.inf, np.float32)
        groups: dict[str, list[int]] = {}
        for i, w in enumerate(watches):
            groups.setdefault(json.dumps(w.filters, sort_keys=True), []).append(i)
        for members in groups.values():
            f = WatchFilters.model_validate(watches[members[0]].filters)
            cols = np.fromiter((_admits(f, owner[v]) for v in vids), dtype=bool, count=len(vids))
            best[members] = screen.best_scores(vectors[members], chunks[cols])
        return screen.passing(best, np.array([self._bar(w) for w in watches], dtype=np.float32))

    def _relevance(self, vector: np.ndarray, passages: list[Passage]) -> float:
        """The best cosine of the question and a cited passage's chunks as stored: the measure of
        the relevance floor, so the pre-screen can apply a watch's own bar too."""
        store = self.service.index.store
        vids = []
        for p in passages:
            chunks = store.chunks_by_vid(store.chunk_vids(p.doc_id)).values()
            vids += [c.vid for c in chunks if c.start >= p.start and c.end <= p.end]
        vecs = self.service.index.vectors_present(vids)
        return max((float(v @ vector) for v in vecs.values()), default=0.0)


class _Queue:
    """A commit's notifications, written to watches.sqlite in groups (each before it is sent)
    and handed to the deliverer group by group, so the first goes out while the other watches
    are still evaluated."""

    def __init__(self, watches: Watches) -> None:
        self.watches = watches
        self.ids: list[str] = []
        self._waiting: list[tuple[EventRow, dict | None]] = []
        self._since = 0.0

    def add(self, watch: WatchRow, found: Notification) -> None:
        if not self._waiting:
            self._since = time.monotonic()
        self._waiting.append(self.watches._event(watch, "watch.answer", found))
        if len(self._waiting) >= FLUSH_EVERY or time.monotonic() - self._since >= FLUSH_S:
            self.flush()

    def flush(self) -> None:
        if not self._waiting:
            return
        self.watches.store.add_events(self._waiting)
        self.ids += [e.id for e, _ in self._waiting]
        self._waiting = []
        self.watches.deliverer.kick()


def _admits(f: WatchFilters, doc: Any) -> bool:
    """Whether the search's limits may admit this article (its source and day; the as-of time is
    left out, so this admits at least what the search does: the screen stays on the safe side)."""
    if f.source is not None and not (doc.source or "").startswith(f.source):
        return False
    day = doc.published[:10] if doc.published else None
    if day is None:
        return f.include_undated
    return not ((f.published_after and day < f.published_after.isoformat())
                or (f.published_before and day > f.published_before.isoformat()))


def _last(event_id: str | None, found: Notification) -> dict:
    return PreviousAnswer(event_id=event_id, answer=found.answer, passages=found.passages).model_dump(mode="json")


def _same(a: str, b: str) -> bool:
    """The same answer, its citation numbers aside (they follow the ranks of each evaluation)."""
    return _plain(a) == _plain(b)


def _plain(text: str) -> str:
    return " ".join(re.sub(r"\[\d+\]", " ", text).lower().split())


def _out(w: WatchRow, notified: int) -> WatchOut:
    return WatchOut(
        id=w.id, question=w.question, url=w.url, min_relevance=w.min_relevance,
        filters=WatchFilters.model_validate(w.filters), created=w.created, notified=notified,
    )


def _event_out(e: EventRow) -> WatchEventOut:
    return WatchEventOut(
        id=e.id, watch_id=e.watch_id, type=e.type, created=e.created, status=e.status, attempts=e.attempts,  # type: ignore[arg-type]
        last_status=e.last_status, last_error=e.last_error,
        next_attempt=_iso(e.next_at) if e.status == "pending" and e.next_at is not None else None,
        delivered=e.delivered, payload=json.loads(e.payload),
    )
