"""What the library tells whoever watches it: timed stages of a query, ingests, feed polls.

Listeners (Prometheus metrics, OpenTelemetry spans: api/metrics.py, api/tracing.py) register
here; the library only names the moments. With no listener a stage costs one list check, so the
CLI and the evaluation harness pay nothing. Imports nothing of the project.
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Protocol

# The stages a query passes through, in order (each a histogram label and a span name).
STAGES = ("embed", "vector_search", "word_search", "fuse", "rerank", "answer")


class Listener(Protocol):
    """Told of every stage (as a context manager around it), ingest and feed poll."""

    def stage(self, name: str) -> AbstractContextManager[object]: ...

    def ingested(self, documents: int, chunks: int, seconds: float) -> None: ...

    def polled(self, outcome: str) -> None: ...


_listeners: list[Listener] = []


def listen(listener: Listener) -> None:
    """Start telling `listener` (once, however often it is added)."""
    if listener not in _listeners:
        _listeners.append(listener)


def unlisten(listener: Listener) -> None:
    if listener in _listeners:
        _listeners.remove(listener)


class stage:  # noqa: N801 - used as `with stage("embed"):`, like contextlib's lower-case helpers
    """Around one stage of a query: every listener's context, entered in order, left in reverse."""

    __slots__ = ("name", "_open")

    def __init__(self, name: str) -> None:
        self.name = name
        self._open: list[AbstractContextManager[object]] = []

    def __enter__(self) -> "stage":
        if _listeners:
            for listener in _listeners:
                ctx = listener.stage(self.name)
                ctx.__enter__()
                self._open.append(ctx)
        return self

    def __exit__(self, *exc: object) -> None:
        while self._open:
            self._open.pop().__exit__(*exc)


def ingested(documents: int, chunks: int, seconds: float) -> None:
    """An ingest committed: documents added or replaced, chunks embedded, seconds it took."""
    for listener in _listeners:
        listener.ingested(documents, chunks, seconds)


def polled(outcome: str) -> None:
    """A feed was polled; `outcome` is the watcher's (ok, unchanged, error, ...)."""
    for listener in _listeners:
        listener.polled(outcome)


class Timer:
    """A stage context that hands its duration in seconds to a callback (for histograms)."""

    __slots__ = ("_record", "_start")

    def __init__(self, record) -> None:  # type: ignore[no-untyped-def]
        self._record = record
        self._start = 0.0

    def __enter__(self) -> "Timer":
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self._record(time.perf_counter() - self._start)
