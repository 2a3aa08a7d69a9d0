"""`Client` and `AsyncClient`: one method per route, the same requests built once for both.

Reads (`ask`, `search`, `timeline`, `documents`, `document`, `watches`, `watch`, `watch_events`,
`health`, `metrics`) are retried after a failed connection, a timeout, 429, 502, 503 or 504, with
doubling waits; writes are sent once, so a write that may have reached the server is never
repeated behind the caller's back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from ..schema import (
    DeletedOut, DocumentOut, DocumentSummary, Health, IngestOut, Passage, Query, QueryResponse, TimelineQuery,
    TimelineResponse,
)
from ..schema.watches import WatchCreated, WatchEventOut, WatchIn, WatchOut
from .errors import ConnectionFailed, error_for

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"
# Statuses worth another try of a read: overloaded or a proxy that lost its backend.
RETRY_STATUSES = frozenset({429, 502, 503, 504})
_SUMMARIES = TypeAdapter(list[DocumentSummary])
_WATCHES = TypeAdapter(list[WatchOut])
_EVENTS = TypeAdapter(list[WatchEventOut])


@dataclass
class _Call:
    """One request: what to send, whether it is a read (retried), and how to read the answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    read: bool = True
    kwargs: dict[str, Any] = field(default_factory=dict)


def _query_body(question: str | Query | TimelineQuery | WatchIn, fields: dict[str, Any]) -> dict[str, Any]:
    """The JSON body: a model's own fields (the defaults left to the server), or the question and
    the fields given, either way with `fields` over it."""
    if not isinstance(question, str):
        body = question.model_dump(mode="json", exclude_defaults=True)
        body["question"] = question.question
        return {**body, **to_jsonable_python({k: v for k, v in fields.items() if v is not None})}
    return to_jsonable_python({"question": question, **{k: v for k, v in fields.items() if v is not None}})


def _model(kind: type[T]) -> Callable[[httpx.Response], T]:
    return lambda r: kind.model_validate_json(r.content)  # type: ignore[attr-defined]


class _Requests:
    """The requests of the API; `Client` and `AsyncClient` send them."""

    @staticmethod
    def ask(question: str | Query, fields: dict[str, Any]) -> _Call:
        return _Call("POST", "/query", _model(QueryResponse), kwargs={"json": _query_body(question, fields)})

    @staticmethod
    def search(question: str | Query, fields: dict[str, Any]) -> _Call:
        return _Call(
            "POST", "/query", lambda r: QueryResponse.model_validate_json(r.content).passages,
            kwargs={"json": {**_query_body(question, fields), "answer": False}},
        )

    @staticmethod
    def timeline(question: str | TimelineQuery, fields: dict[str, Any]) -> _Call:
        return _Call("POST", "/timeline", _model(TimelineResponse), kwargs={"json": _query_body(question, fields)})

    @staticmethod
    def add_watch(question: str | WatchIn, fields: dict[str, Any]) -> _Call:
        body = _query_body(question, fields)
        return _Call("POST", "/watches", _model(WatchCreated), read=False, kwargs={"json": body})

    @staticmethod
    def watches() -> _Call:
        return _Call("GET", "/watches", lambda r: _WATCHES.validate_json(r.content))

    @staticmethod
    def watch(watch_id: str) -> _Call:
        return _Call("GET", f"/watches/{quote(watch_id, safe='')}", _model(WatchOut))

    @staticmethod
    def watch_events(watch_id: str) -> _Call:
        return _Call("GET", f"/watches/{quote(watch_id, safe='')}/events", lambda r: _EVENTS.validate_json(r.content))

    @staticmethod
    def delete_watch(watch_id: str) -> _Call:
        return _Call("DELETE", f"/watches/{quote(watch_id, safe='')}", _model(DeletedOut), read=False)

    @staticmethod
    def documents() -> _Call:
        return _Call("GET", "/documents", lambda r: _SUMMARIES.validate_json(r.content))

    @staticmethod
    def document(doc_id: str) -> _Call:
        return _Call("GET", f"/documents/{quote(doc_id, safe='')}", _model(DocumentOut))

    @staticmethod
    def health() -> _Call:
        return _Call("GET", "/health", _model(Health))

    @staticmethod
    def metrics() -> _Call:
        return _Call("GET", "/metrics", lambda r: r.text)

    @staticmethod
    def add_document(text: str, fields: dict[str, Any]) -> _Call:
        body = {"text": text, **{k: v for k, v in fields.items() if v is not None}}
        return _Call("POST", "/documents", _model(IngestOut), read=False, kwargs={"json": body})

    @staticmethod
    def upload(path: Path) -> _Call:
        files = {"file": (path.name, path.read_bytes())}
        return _Call("POST", "/documents", _model(IngestOut), read=False, kwargs={"files": files})

    @staticmethod
    def delete_document(doc_id: str) -> _Call:
        return _Call("DELETE", f"/documents/{quote(doc_id, safe='')}", _model(DeletedOut), read=False)


def _headers(api_key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {api_key}"} if api_key else {}


def _failed(response: httpx.Response) -> Exception:
    """The server's error as a typed exception with its sentence (`{"error": ...}`)."""
    try:
        message = str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip()[:500] or response.reason_phrase
    return error_for(response.status_code, message)


def _unreachable(base_url: str, exc: httpx.TransportError) -> ConnectionFailed:
    return ConnectionFailed(None, f"no answer from {base_url}: {type(exc).__name__}: {exc}")


class _Settings:
    def __init__(self, base_url: str, api_key: str | None, timeout: float, retries: int, backoff_s: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout
        self.retries = retries
        self.backoff_s = backoff_s

    def attempts(self, call: _Call) -> int:
        return 1 + (self.retries if call.read else 0)

    def wait(self, attempt: int) -> float:
        return self.backoff_s * (2**attempt)


class Client(_Settings):
    """The HTTP API from Python. `with Client(url, api_key=...) as rag: rag.ask("...")`."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 60.0, retries: int = 2,
        backoff_s: float = 0.25, transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff_s)
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport)

    def _send(self, call: _Call) -> Any:
        attempts = self.attempts(call)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = self._http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise _unreachable(self.base_url, exc) from None
            else:
                if response.is_success:
                    return call.parse(response)
                if last or response.status_code not in RETRY_STATUSES:
                    raise _failed(response)
            time.sleep(self.wait(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    def ask(self, question: str | Query, **fields: Any) -> QueryResponse:
        """Passages and an answer: the fields of `POST /query` (k, as_of, choices, source, ...)."""
        return self._send(_Requests.ask(question, fields))

    def search(self, question: str | Query, **fields: Any) -> list[Passage]:
        """Passages only (no answer drafted)."""
        return self._send(_Requests.search(question, fields))

    def timeline(self, question: str | TimelineQuery, **fields: Any) -> TimelineResponse:
        """The story's dated events, oldest first: the fields of `POST /timeline` (as_of, k, source, ...)."""
        return self._send(_Requests.timeline(question, fields))

    def add_watch(self, question: str | WatchIn, **fields: Any) -> WatchCreated:
        """A standing question whose new answers go to the webhook `url`; its `secret` is shown only here."""
        return self._send(_Requests.add_watch(question, fields))

    def watches(self) -> list[WatchOut]:
        return self._send(_Requests.watches())

    def watch(self, watch_id: str) -> WatchOut:
        return self._send(_Requests.watch(watch_id))

    def watch_events(self, watch_id: str) -> list[WatchEventOut]:
        """A standing question's deliveries, oldest first, with their state."""
        return self._send(_Requests.watch_events(watch_id))

    def delete_watch(self, watch_id: str) -> DeletedOut:
        return self._send(_Requests.delete_watch(watch_id))

    def documents(self) -> list[DocumentSummary]:
        return self._send(_Requests.documents())

    def document(self, doc_id: str) -> DocumentOut:
        return self._send(_Requests.document(doc_id))

    def health(self) -> Health:
        return self._send(_Requests.health())

    def metrics(self) -> str:
        """The Prometheus text of `/metrics`."""
        return self._send(_Requests.metrics())

    def add_document(self, text: str, *, id: str | None = None, title: str | None = None,  # noqa: A002
                     url: str | None = None, published: str | None = None) -> IngestOut:
        return self._send(_Requests.add_document(text, {"id": id, "title": title, "url": url, "published": published}))

    def upload(self, path: str | Path) -> IngestOut:
        """A file of articles (.txt, .md, .jsonl, .jsonl.gz, .html), parsed as `rag ingest` parses it."""
        return self._send(_Requests.upload(Path(path)))

    def delete_document(self, doc_id: str) -> DeletedOut:
        return self._send(_Requests.delete_document(doc_id))

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Settings):
    """The same methods as `Client`, awaited. `async with AsyncClient(url) as rag: await rag.ask("...")`."""

    def __init__(
        self, base_url: str = DEFAULT_URL, api_key: str | None = None, timeout: float = 60.0, retries: int = 2,
        backoff_s: float = 0.25, transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, api_key, timeout, retries, backoff_s)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(api_key), timeout=timeout, transport=transport
        )

    async def _send(self, call: _Call) -> Any:
        attempts = self.attempts(call)
        for attempt in range(attempts):
            last = attempt + 1 == attempts
            try:
                response = await self._http.request(call.method, call.path, **call.kwargs)
            except httpx.TransportError as exc:
                if last:
                    raise _unreachable(self.base_url, exc) from None
            else:
                if response.is_success:
                    return call.parse(response)
                if last or response.status_code not in RETRY_STATUSES:
                    raise _failed(response)
            await asyncio.sleep(self.wait(attempt))
        raise AssertionError("unreachable")  # pragma: no cover

    async def ask(self, question: str | Query, **fields: Any) -> QueryResponse:
        return await self._send(_Requests.ask(question, fields))

    async def search(self, question: str | Query, **fields: Any) -> list[Passage]:
        return await self._send(_Requests.search(question, fields))

    async def timeline(self, question: str | TimelineQuery, **fields: Any) -> TimelineResponse:
        return await self._send(_Requests.timeline(question, fields))

    async def add_watch(self, question: str | WatchIn, **fields: Any) -> WatchCreated:
        return await self._send(_Requests.add_watch(question, fields))

    async def watches(self) -> list[WatchOut]:
        return await self._send(_Requests.watches())

    async def watch(self, watch_id: str) -> WatchOut:
        return await self._send(_Requests.watch(watch_id))

    async def watch_events(self, watch_id: str) -> list[WatchEventOut]:
        return await self._send(_Requests.watch_events(watch_id))

    async def delete_watch(self, watch_id: str) -> DeletedOut:
        return await self._send(_Requests.delete_watch(watch_id))

    async def documents(self) -> list[DocumentSummary]:
        return await self._send(_Requests.documents())

    async def document(self, doc_id: str) -> DocumentOut:
        return await self._send(_Requests.document(doc_id))

    async def health(self) -> Health:
        return await self._send(_Requests.health())

    async def metrics(self) -> str:
        return await self._send(_Requests.metrics())

    async def add_document(self, text: str, *, id: str | None = None, title: str | None = None,  # noqa: A002
                           url: str | None = None, published: str | None = None) -> IngestOut:
        return await self._send(_Requests.add_document(text, {"id": id, "title": title, "url": url, "published": published}))

    async def upload(self, path: str | Path) -> IngestOut:
        return await self._send(_Requests.upload(Path(path)))

    async def delete_document(self, doc_id: str) -> DeletedOut:
        return await self._send(_Requests.delete_document(doc_id))

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
