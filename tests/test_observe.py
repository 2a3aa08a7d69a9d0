"""rag/observe.py: stages, ingests and polls reach every listener, in order; none costs nothing."""

from __future__ import annotations

from contextlib import contextmanager

import pytest

from rag import observe


class Recorder:
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    @contextmanager
    def stage(self, stage: str):  # type: ignore[no-untyped-def]
        self.log.append((self.name, "enter", stage))
        try:
            yield
        finally:
            self.log.append((self.name, "exit", stage))

    def ingested(self, documents: int, chunks: int, seconds: float) -> None:
        self.log.append((self.name, "ingested", documents, chunks))

    def polled(self, outcome: str) -> None:
        self.log.append((self.name, "polled", outcome))


def test_listeners_see_stages_in_order_and_errors_pass_through():
    log: list = []
    a, b = Recorder("a", log), Recorder("b", log)
    observe.listen(a)
    observe.listen(b)
    observe.listen(a)  # once only
    try:
        with observe.stage("embed"):
            log.append("work")
        with pytest.raises(ValueError), observe.stage("answer"):
            raise ValueError("boom")
        observe.ingested(2, 7, 0.5)
        observe.polled("error")
    finally:
        observe.unlisten(a)
        observe.unlisten(b)
    assert log == [
        ("a", "enter", "embed"), ("b", "enter", "embed"), "work", ("b", "exit", "embed"), ("a", "exit", "embed"),
        ("a", "enter", "answer"), ("b", "enter", "answer"), ("b", "exit", "answer"), ("a", "exit", "answer"),
        ("a", "ingested", 2, 7), ("b", "ingested", 2, 7), ("a", "polled", "error"), ("b", "polled", "error"),
    ]


def test_a_stage_without_listeners_does_nothing():
    before = list(observe._listeners)
    observe._listeners.clear()
    try:
        with observe.stage("embed") as s:
            assert s._open == []
    finally:
        observe._listeners.extend(before)


def test_timer_hands_over_the_duration():
    seen: list[float] = []
    with observe.Timer(seen.append):
        pass
    assert len(seen) == 1 and 0 <= seen[0] < 1
