"""Sending deliveries: signed per Standard Webhooks (the `standardwebhooks` package), through the
same address guard as feed fetching, retried with doubling waits, in one background thread."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import httpx
from standardwebhooks import Webhook

from ..ingestion.fetch import FetchError, FetchPolicy, check_url, guarded_transport
from .store import EventRow, WatchStore

# Waits between attempts double from RAG_WATCH_RETRY_S up to this (Standard Webhooks' schedules
# reach hours; an hour keeps a receiver that was down overnight from waiting a day).
MAX_WAIT_S = 3600.0
# The thread looks for due deliveries at least this often, so a delivery queued by another
# process on the same index (a `rag ingest` beside `rag serve`) is not left waiting.
POLL_S = 30.0
# A receiver's error body is quoted in the event up to this many characters.
QUOTE_CHARS = 200


def backoff(attempts: int, first_s: float) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1, 2, ...)."""
    return min(first_s * 2 ** (attempts - 1), MAX_WAIT_S)


class Deliverer:
    """Sends due deliveries until stopped; `kick()` after queueing one."""

    def __init__(self, store: WatchStore, policy: FetchPolicy, first_wait_s: float, attempts: int) -> None:
        self.store = store
        self.policy = policy
        self.first_wait_s = first_wait_s
        self.attempts = attempts
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._client: httpx.Client | None = None

    def kick(self) -> None:
        with self._start_lock:
            if self._stop.is_set():
                return
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="webhook-deliveries", daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stops after the attempt in flight (if it takes longer than `timeout`, it is sent again
        at the next start: the event is marked delivered only once a receiver accepted it)."""
        with self._start_lock:
            self._stop.set()
            self._wake.set()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            for event in self.store.due(time.time()):
                if self._stop.is_set():
                    return
                self.deliver(event)
            nxt = self.store.next_due()
            wait = POLL_S if nxt is None else min(POLL_S, max(0.0, nxt - time.time()))
            self._wake.wait(wait)
        if self._client is not None:
            self._client.close()

    def deliver(self, event: EventRow) -> tuple[bool, str]:
        """One attempt, recorded; (accepted, what happened)."""
        watch = self.store.watch(event.watch_id)
        if watch is None:
            return False, "the watch was deleted"
        status, error = self.send(watch.url, watch.secret, event.id, event.payload)
        if status is not None and 200 <= status < 300:
            self.store.record_attempt(event.id, "delivered", status, None, None)
            return True, f"HTTP {status}"
        done = event.attempts + 1
        if done >= self.attempts or event.type == "watch.test":  # a test says how it went, once
            self.store.record_attempt(event.id, "failed", status, error, None)
        else:
            self.store.record_attempt(event.id, "pending", status, error, time.time() + backoff(done, self.first_wait_s))
        return False, error or f"HTTP {status}"

    def send(self, url: str, secret: str, msg_id: str, body: str) -> tuple[int | None, str | None]:
        """(HTTP status or None, error sentence or None) of one signed POST."""
        now = datetime.now(timezone.utc)
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body),
            "user-agent": self.policy.user_agent,
        }
        try:
            check_url(url, self.policy.allow_private, self.policy.allow_hosts)
            resp = self.client().post(url, content=body.encode(), headers=headers)
        except FetchError as exc:
            return None, str(exc)
        except httpx.TimeoutException:
            return None, f"{url}: timed out after {self.policy.timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, f"{url}: {type(exc).__name__}: {exc or 'connection failed'}"
        if 200 <= resp.status_code < 300:
            return resp.status_code, None
        quoted = resp.text[:QUOTE_CHARS].strip()
        return resp.status_code, f"{url}: HTTP {resp.status_code}" + (f": {quoted}" if quoted else "")

    def client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(
                transport=guarded_transport(self.policy), timeout=httpx.Timeout(self.policy.timeout_s),
                follow_redirects=False, trust_env=False,  # a redirect or a proxy would go past the address check
            )
        return self._client
