"""`Watches`: create, list and delete standing questions, evaluate them after each commit, and
hand what they find to the deliverer."""

from __future__ import annotations

import base64
import dataclasses
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
from ..text import context_text
from .deliver import Deliverer
from .models import (
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

    def ask(self, query: Query) -> QueryResponse: ...


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
        found = self.evaluate(row, None)  # what the archive says now: the first notification updates it
        if found is not None:
            row = dataclasses.replace(row, last=_last(None, found))
        self.store.add_watch(row)
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
        queued = []
        for watch in watches:
            found = self.evaluate(watch, fresh)
            if found is not None:
                queued.append(self._queue(watch, "watch.answer", found))
                self.deliverer.kick()  # sent while the other watches are evaluated
        return queued

    def evaluate(self, watch: WatchRow, doc_ids: list[str] | None) -> Notification | None:
        """The notification the articles `doc_ids` (None: the whole archive) give `watch`, or None
        when they do not support a verified answer, or repeat the watch's last one."""
        f = WatchFilters.model_validate(watch.filters)
        query = Query(
            question=watch.question, k=self.settings.top_k, doc_ids=doc_ids, source=f.source,
            published_after=f.published_after, published_before=f.published_before,
            include_undated=f.include_undated, recency=0.0, time_window=False,
        )
        resp = self.service.ask(query)
        answer = resp.answer
        if not resp.answerable or answer is None or not answer.verified or not answer.citations:
            return None
        cited = [p for p in resp.passages if p.rank in answer.citations]
        if watch.min_relevance is not None and self._relevance(watch.question, cited) < watch.min_relevance:
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
    def _queue(self, watch: WatchRow, kind: str, data: Notification | dict, schedule: bool = True) -> str:
        now = time.time()
        event_id = "msg_" + uuid.uuid4().hex
        body = data.model_dump(mode="json") if isinstance(data, Notification) else data
        payload = json.dumps(
            {"type": kind, "timestamp": datetime.fromtimestamp(now, timezone.utc).isoformat(), "data": body},
            ensure_ascii=False, separators=(",", ":"),
        )
        last = _last(event_id, data) if isinstance(data, Notification) and kind == "watch.answer" else None
        self.store.add_event(
            EventRow(event_id, watch.id, kind, _iso(now), payload, "pending", 0, now if schedule else None, None, None,
                     None),
            last,
        )
        return event_id

    @staticmethod
    def _previous(watch: WatchRow) -> PreviousAnswer | None:
        return None if watch.last is None else PreviousAnswer.model_validate(watch.last)

    def _relevance(self, question: str, passages: list[Passage]) -> float:
        """The best cosine of question and cited passage, as retrieval measures relevance."""
        texts = [question] + [context_text(p.title, p.text) for p in passages]
        vecs = np.asarray(self.service.embedder.encode(texts))
        return float(max(vecs[1:] @ vecs[0])) if passages else 0.0


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
