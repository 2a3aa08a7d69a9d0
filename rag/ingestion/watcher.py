"""Watching feeds: poll each, ingest only new or changed articles, keep going through errors.

A poll asks for the feed conditionally (ETag / Last-Modified): a 304 costs nothing more. Of a
changed feed, entries the feed states as before are skipped; a new or changed entry's page is
fetched (conditionally, when seen before) and ingested unless its content hash is as stored.
Failures back off (the interval doubled per failure in a row, up to MAX_BACKOFF times) and are
kept per feed; one broken feed or page never stops the others. State lives in the index's SQLite
(`feed_state`), so a restart resumes with the same validators and hashes.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone

from .. import observe
from ..storage.store import Store
from .documents import Document, DocumentError
from .feeds import FeedEntry, parse_feed
from .fetch import Fetcher
from .pipeline import IngestReport
from .web import page_document

IngestFn = Callable[[list[Document]], IngestReport]
EventFn = Callable[[str], None]
# Backoff stops doubling after this many failures in a row (10 min polls: at most every 5.3 h).
MAX_BACKOFF = 32
# A feed's error keeps at most this many failed pages' reasons.
ERRORS_KEPT = 3


@dataclass
class PageState:
    signature: str  # the feed entry as last ingested (rag.ingestion.feeds.FeedEntry.signature)
    doc_id: str
    content_hash: str
    etag: str | None = None
    last_modified: str | None = None
    # Why the page could not become an article (undecodable, no article text): not retried until
    # the feed changes the entry. Failures to fetch it (timeouts, HTTP errors) are retried each poll.
    error: str | None = None


@dataclass
class FeedState:
    url: str
    etag: str | None = None
    last_modified: str | None = None
    last_poll: str | None = None  # ISO UTC
    last_success: str | None = None
    error: str | None = None
    failures: int = 0  # in a row
    next_poll: float = 0.0  # epoch seconds
    pages: dict[str, PageState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, url: str, text: str | None) -> "FeedState":
        if not text:
            return cls(url)
        raw = json.loads(text)
        pages = {link: PageState(**p) for link, p in raw.pop("pages", {}).items()}
        return cls(**{**raw, "url": url, "pages": pages})


@dataclass
class PollSummary:
    url: str
    outcome: str  # "changed", "not modified", "error"
    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    skipped: int = 0  # entries the feed states as before: not fetched
    failed: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0
    next_in_s: float = 0.0

    def line(self) -> str:
        """The one-line summary printed per poll."""
        tail = f"; next poll in {_human(self.next_in_s)}"
        if self.outcome == "error":
            return f"{self.url}: error: {self.error}{tail}"
        if self.outcome == "not modified":
            return f"{self.url}: not modified ({self.seconds:.1f} s){tail}"
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return (
            f"{self.url}: {self.added} new, {self.replaced} replaced, {self.unchanged} unchanged, "
            f"{self.skipped} skipped as seen{failed} ({self.seconds:.1f} s){tail}"
        )


class Watcher:
    """Polls `feeds` every `every_s` seconds into `ingest`; `poll_once` for one round, `run` to loop."""

    def __init__(
        self, feeds: list[str], store: Store, fetcher: Fetcher, ingest: IngestFn, every_s: float,
        on_event: EventFn | None = None, clock: Callable[[], float] = time.time,
    ) -> None:
        self.feeds = list(dict.fromkeys(feeds))
        self.store = store
        self.fetcher = fetcher
        self.ingest = ingest
        self.every_s = every_s
        self.on_event = on_event or (lambda _msg: None)
        self.clock = clock
        self._lock = threading.Lock()
        stored = store.feed_states()
        self.states = {url: FeedState.from_json(url, stored.get(url)) for url in self.feeds}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one round ---------------------------------------------------------------------------
    def poll_once(self, due_only: bool = False) -> list[PollSummary]:
        """Poll every feed (or only those due); never raises for a feed's or a page's failure."""
        out = []
        for url in self.feeds:
            if self._stop.is_set():
                break
            if due_only and self.states[url].next_poll > self.clock():
                continue
            out.append(self.poll(url))
        return out

    def poll(self, url: str) -> PollSummary:
        t0 = time.perf_counter()
        # The poll works on a copy and publishes it whole once saved, so a reader (/health) sees
        # the last finished poll, never one half done nor a page list changing as it counts.
        state = replace(self.states[url], pages=dict(self.states[url].pages))
        now = self.clock()
        polled = _iso(now)
        summary = PollSummary(url, "changed")
        try:
            self._poll(state, summary)
            state.failures = 0
            state.last_success = polled
            state.error = "; ".join(summary.failed[:ERRORS_KEPT]) or None
            delay = self.every_s
        except Exception as exc:  # noqa: BLE001 - whatever breaks one feed must not stop the others
            state.failures += 1
            state.error = str(exc) if isinstance(exc, DocumentError) else f"{type(exc).__name__}: {exc}"
            summary.outcome, summary.error = "error", state.error
            delay = self.every_s * min(2**state.failures, MAX_BACKOFF)
        state.last_poll, state.next_poll = polled, now + delay
        summary.next_in_s = delay
        summary.seconds = time.perf_counter() - t0
        self._save(state)
        self.states[url] = state
        observe.polled(summary.outcome)
        self.on_event(summary.line())
        return summary

    def _poll(self, state: FeedState, summary: PollSummary) -> None:
        fetched = self.fetcher.get(state.url, state.etag, state.last_modified)
        if fetched.not_modified:
            summary.outcome = "not modified"
            return
        feed = parse_feed(fetched.content, fetched.url, fetched.content_type, fetched.charset)
        pending: list[tuple[str, PageState, Document]] = []
        complete, retry = True, False
        for entry in feed.entries:
            if self._stop.is_set():  # shutting down: keep what was read, read the feed again next time
                complete = False
                break
            known = state.pages.get(entry.link)
            if known is not None and known.signature == entry.signature:
                summary.skipped += 1
                continue
            try:
                found = self._read_entry(entry, known, state, summary)
            except _Retry:
                retry = True
                continue
            if found is not None:
                pending.append(found)
        if pending:
            report = self.ingest([doc for _, _, doc in pending])
            summary.added, summary.replaced = len(report.added), len(report.replaced)
            summary.unchanged += len(report.unchanged)
            for link, seen, doc in pending:
                self.on_event(f"  + {doc.title or doc.id}  {link}")
                state.pages[link] = seen
        if complete:  # entries the feed no longer lists are forgotten: the state stays bounded
            listed = {e.link for e in feed.entries}
            state.pages = {link: page for link, page in state.pages.items() if link in listed}
        if complete and not retry:  # else the feed is read in full again next time, to retry
            state.etag, state.last_modified = fetched.etag, fetched.last_modified

    def _read_entry(
        self, entry: FeedEntry, known: PageState | None, state: FeedState, summary: PollSummary
    ) -> tuple[str, PageState, Document] | None:
        """A new or changed entry's article to ingest, or None when its page is as stored or
        unreadable (remembered); _Retry when the page could not be fetched."""
        page = None
        try:
            validators = (known.etag, known.last_modified) if known and not known.error else (None, None)
            page = self.fetcher.get(entry.link, *validators)
            if page.not_modified and known is not None:
                state.pages[entry.link] = replace(known, signature=entry.signature)
                summary.unchanged += 1
                return None
            doc = page_document(page, entry, doc_id=(known.doc_id or None) if known else None)
        except Exception as exc:  # noqa: BLE001 - one page never stops the feed
            reason = str(exc) if isinstance(exc, DocumentError) else f"{entry.link}: {type(exc).__name__}: {exc}"
            summary.failed.append(reason)
            self.on_event(f"  ! {reason}")
            if page is None:
                raise _Retry from None
            # Fetched but unreadable: remembered, so not fetched again until the feed changes the entry.
            state.pages[entry.link] = PageState(entry.signature, known.doc_id if known else "", "", error=reason)
            return None
        seen = PageState(entry.signature, doc.id, doc.content_hash, page.etag, page.last_modified)
        if known is not None and known.content_hash == doc.content_hash:
            state.pages[entry.link] = seen
            summary.unchanged += 1
            return None
        return entry.link, seen, doc

    def _save(self, state: FeedState) -> None:
        with self._lock:
            Store.set_feed_state(self.store.connect(), state.url, state.to_json())

    # --- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Poll each feed when due until `stop()`."""
        while not self._stop.is_set():
            try:
                self.poll_once(due_only=True)
            except Exception as exc:  # noqa: BLE001 - e.g. the state could not be saved: try again later
                self.on_event(f"feed watcher: {type(exc).__name__}: {exc}; retrying in {_human(self.every_s)}")
                self._stop.wait(self.every_s)
                continue
            due = min((s.next_poll for s in self.states.values()), default=self.clock() + self.every_s)
            self._stop.wait(max(0.05, due - self.clock()))

    def start(self) -> None:
        """Run in a background thread (the server's)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="feed-watcher", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Stop the loop: the poll in progress ends at its next page (at most a fetch timeout)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def statuses(self) -> list[FeedState]:
        return [self.states[url] for url in self.feeds]

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()


class _Retry(Exception):
    """A page that could not be fetched: fetched again next poll."""


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
