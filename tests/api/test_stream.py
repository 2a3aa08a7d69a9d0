"""`POST /query/stream` (server-sent events) and `rag ask --stream`, over the real seeds index."""

from __future__ import annotations

import json

import pytest
from support import FakeLLM
from typer.testing import CliRunner

NATO = "What does Russia demand on NATO?"
TANKS = "How many tanks did Germany send to Ukraine?"


def events(client, body: dict) -> list[tuple[str, dict]]:
    """(event, data) pairs of one streamed answer, checking the SSE framing on the way."""
    out = []
    with client.stream("POST", "/query/stream", json=body) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        raw = "".join(r.iter_text())
    for block in filter(None, raw.split("\n\n")):
        lines = dict(line.split(": ", 1) for line in block.split("\n") if not line.startswith(":"))
        out.append((lines["event"], json.loads(lines["data"])))
    return out


@pytest.fixture(scope="module")
def fake_llm():
    server = FakeLLM()
    yield server
    server.close()


@pytest.fixture()
def llm_at(seeds_service, monkeypatch):
    """Point the shared service's OpenAI generator at `url` for one test."""

    def point(url: str, **extra) -> None:
        update = {"llm_base_url": url, "llm_timeout_s": 5.0, "llm_retries": 0} | extra
        monkeypatch.setattr(seeds_service, "settings", seeds_service.settings.model_copy(update=update))

    return point


def test_extractive_streams_passages_one_delta_then_the_verified_answer(client):
    got = events(client, {"question": NATO})
    kinds = [e for e, _ in got]
    assert kinds == ["passages", "delta", "answer"]
    plain = client.post("/query", json={"question": NATO}).json()
    passages, delta, final = (d for _, d in got)
    assert passages["passages"] == plain["passages"] and passages["question"] == NATO
    assert final["answer"] == plain["answer"] and final["answerable"] is True
    assert delta["text"] == final["answer"]["text"] and final["answer"]["verified"] is True


def test_unanswerable_streams_a_refusal_and_no_draft(client):
    got = events(client, {"question": TANKS, "generator": "openai"})
    assert [e for e, _ in got] == ["passages", "answer"]
    assert got[-1][1]["answerable"] is False and got[-1][1]["answer"]["citations"] == []


def test_openai_streams_token_deltas_then_the_verified_answer(client, fake_llm, llm_at):
    llm_at(fake_llm.url("good"))
    got = events(client, {"question": NATO, "generator": "openai"})
    deltas = [d["text"] for e, d in got if e == "delta"]
    final = got[-1][1]["answer"]
    assert got[0][0] == "passages" and got[-1][0] == "answer" and len(deltas) > 3
    assert final["generator"] == "openai" and final["fallback"] is None and final["verified"] is True
    assert final["citations"] == [1] and "".join(deltas).strip() == final["text"]


@pytest.mark.parametrize("mode", ["garbage", "error500", "madeup"])
def test_failing_llm_degrades_over_both_endpoints(client, fake_llm, llm_at, mode):
    llm_at(fake_llm.url(mode))
    body = {"question": NATO, "generator": "openai"}
    r = client.post("/query", json=body)
    assert r.status_code == 200
    answer = r.json()["answer"]
    assert answer["fallback"] == "extractive" and answer["fallback_reason"] and answer["text"]
    final = events(client, body)[-1]
    assert final[0] == "answer" and final[1]["answer"]["fallback"] == "extractive"


def test_llm_down_is_a_degraded_answer_not_a_500(client, llm_at):
    llm_at("http://127.0.0.1:9")
    r = client.post("/query", json={"question": NATO, "generator": "openai"})
    assert r.status_code == 200
    assert "cannot reach the LLM server" in r.json()["answer"]["fallback_reason"]


def test_bad_stream_request_is_a_json_4xx(client):
    r = client.post("/query/stream", json={"question": NATO, "generator": "gpt-5"})
    assert r.status_code == 422 and "'extractive', 'openai' or 'local'" in r.json()["error"]


def test_query_without_answer_never_calls_the_llm(client, fake_llm, llm_at):
    llm_at(fake_llm.url("count-noanswer"))
    body = client.post("/query", json={"question": NATO, "generator": "openai", "answer": False}).json()
    assert body["answer"] is None and body["answerable"] is True and fake_llm.calls["count-noanswer"] == 0


# --- rag ask --stream ---------------------------------------------------------------------------------


@pytest.fixture()
def cli(seeds_service, monkeypatch):
    from rag import cli

    monkeypatch.setattr(cli, "open_service", lambda **_: seeds_service)
    runner = CliRunner()
    return lambda *args: runner.invoke(cli.app, list(args))


def test_cli_stream_prints_the_draft_then_what_was_verified(cli):
    r = cli("ask", NATO, "--stream", "-k", "3")
    assert r.exit_code == 0, r.output
    assert "-- verified: every sentence is supported" in r.output and "[3] " in r.output


def test_cli_stream_says_when_the_draft_was_not_used(cli, llm_at):
    llm_at("http://127.0.0.1:9")
    r = cli("ask", NATO, "--stream", "--generator", "openai")
    assert r.exit_code == 0, r.output
    assert "-- draft not used (cannot reach the LLM server" in r.output and "the extractive answer instead:" in r.output


def test_cli_stream_json_is_one_event_a_line(cli, fake_llm, llm_at):
    llm_at(fake_llm.url("good"))
    r = cli("ask", NATO, "--stream", "--json", "--generator", "openai")
    lines = [json.loads(line) for line in r.output.splitlines()]
    assert lines[0]["event"] == "passages" and lines[-1]["event"] == "answer"
    assert {x["event"] for x in lines[1:-1]} == {"delta"} and lines[-1]["answer"]["generator"] == "openai"


def test_cli_unknown_generator_is_a_usage_error(cli):
    r = cli("ask", NATO, "--generator", "gpt-5")
    assert r.exit_code == 2 and "'extractive', 'openai' or 'local'" in r.output


def test_choices_and_as_of_stream_with_the_answer_event(client):
    body = {"question": "Which Russian media outlet interviewed Alexander Grushko?", "choices": ["Pravda", "Izvestiya"],
            "as_of": "2022-06-16"}
    got = events(client, body)
    assert [e for e, _ in got][0] == "passages" and got[-1][0] == "answer"
    final = got[-1][1]
    plain = client.post("/query", json=body).json()
    assert final["choice"] == plain["choice"] and final["choice"]["picked"] == "Izvestiya"
    assert events(client, {"question": NATO})[-1][1]["choice"] is None
