"""Shared test parts: a few passages, a question over them, and `FakeLLM`, a real OpenAI-style
HTTP server on loopback that answers well or fails the ways real servers do; `committed`, an
index's generation as another process sees it; and `LiveServer`, the app on a real uvicorn."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from rag.answering.extractive import ExtractiveGenerator
from rag.retrieval.search import Hit
from rag.storage.store import ChunkRow

TEXTS = [
    "Reuters also reached out to Trump's communications director, Stephen Chang, who did not respond. "
    "The Kremlin declined to comment on the report.",
    "Five current and former Russian officials said the Kremlin could agree to a freeze on the front lines.",
    "A draft agreement was nearly approved in April 2022 after talks in Istanbul.",
]
QUESTION = "Who is Trump's communications director?"


def make_hits(relevance: float = 0.7) -> list[Hit]:
    return [
        Hit(ChunkRow(i, f"doc{i}", 0, 0, len(t), t), score=1.0 - i / 10, relevance=relevance)
        for i, t in enumerate(TEXTS)
    ]


EXTRACTIVE = ExtractiveGenerator(min_relevance=0.2)


class FakeLLM:
    """A real OpenAI-style HTTP server on 127.0.0.1; the first path segment picks its behaviour.

    `echo` modes answer with the first sentence of passage [1] from the prompt, cited [1].
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.fake = self  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, mode: str, v1: bool = True) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{mode}" + ("/v1" if v1 else "")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def echo_answer(body: dict) -> str:
    user = body["messages"][-1]["content"]
    first = re.search(r"^\[1\] (.+?[.!?])(?:\s|$)", user, re.M)
    return f"{first.group(1)[:-1]} [1]." if first else "NOT IN PASSAGES"


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_POST(self) -> None:  # noqa: N802
        fake: FakeLLM = self.server.fake  # type: ignore[attr-defined]
        mode = self.path.split("/")[1]
        fake.calls[mode] += 1
        body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
        try:
            self._reply(mode, body, fake.calls[mode])
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _reply(self, mode: str, body: dict, call: int) -> None:
        if mode == "good" or (mode == "flaky" and call > 1):
            return self._sse(re.findall(r"\S+\s*", echo_answer(body)))
        if mode == "json":
            return self._json(200, {"choices": [{"message": {"role": "assistant", "content": echo_answer(body)}}]})
        if mode == "mixed":
            return self._sse([echo_answer(body), " The moon is made of green cheese [1]."])
        if mode == "madeup":
            return self._sse(["The moon is made of green cheese [1]. ", "Putin resigned in 1999 [12]."])
        if mode == "refuse":
            return self._sse(["NOT IN", " PASSAGES"])
        if mode == "garbage":
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            return self.wfile.write(b"\x00\xff this is not json at all")
        if mode == "garbage_sse":
            return self._raw_sse([b"data: {not json\n\n"])
        if mode == "empty":
            return self._sse([])
        if mode == "error_event":
            return self._raw_sse([b'data: {"error": {"message": "model overloaded"}}\n\n'])
        if mode in ("error500", "flaky"):
            return self._json(500, {"error": "boom"})
        if mode == "http401" or (mode == "auth" and self.headers.get("authorization") != "Bearer s3cret"):
            return self._json(401, {"error": {"message": "invalid api key"}})
        if mode == "auth":
            return self._sse([echo_answer(body)])
        if mode == "slow":
            time.sleep(5)
            return self._sse([echo_answer(body)])
        if mode == "trickle":
            return self._sse(["Stephen "] * 20, pause=0.3)
        if mode == "hangup":
            self.close_connection = True
            return self.connection.shutdown(2)
        return self._json(404, {"error": f"unknown mode {mode}"})

    def _json(self, status: int, data: dict) -> None:
        raw = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def _sse(self, pieces: list[str], pause: float = 0.0) -> None:
        events = []
        for p in pieces:
            chunk = {"choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]}
            events.append(f"data: {json.dumps(chunk)}\n\n".encode())
        self._raw_sse(events + [b"data: [DONE]\n\n"], pause)

    def _raw_sse(self, events: list[bytes], pause: float = 0.0) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        for e in events:
            self.wfile.write(e)
            self.wfile.flush()
            time.sleep(pause)


def committed(store: Path) -> tuple[int, int]:
    """(generation, documents) as another process sees them; (0, 0) before the first commit."""
    if not store.exists():
        return 0, 0
    try:
        conn = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
    except sqlite3.OperationalError:
        return 0, 0
    try:
        conn.execute("BEGIN")  # one snapshot for both reads
        row = conn.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        docs = conn.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        return (int(row[0]) if row else 0), int(docs)
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return 0, 0
    finally:
        conn.close()


class LiveServer:
    """uvicorn on a free loopback port, in a background thread."""

    def __init__(self, app) -> None:
        import uvicorn

        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(10)
