"""The MCP server through the SDK's own client: over stdio (`rag mcp` as a host launches it) and
over streamable HTTP against a live `rag serve`, every tool called, errors included."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from live import KEY, ROOT, RagServe, rag_env

TOOLS = {"ask", "search", "timeline", "get_document", "list_documents", "add_document", "delete_document"}
QUESTION = "What does Russia demand on NATO?"
ARTICLE = {"id": "mcp-test-1", "title": "Lighthouse restored", "published": "2022-09-01",
           "text": "The old lighthouse at Cape Wrath was restored by volunteers over two summers. "
                   "It shines again every night."}


def run(fn: Callable[[Client], Awaitable[Any]], server: Any) -> Any:
    async def main() -> Any:
        async with Client(server, cache=None, read_timeout_seconds=120) as client:
            return await fn(client)

    return anyio.run(main)


def http_server(url: str, key: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return streamable_http_client(f"{url}/mcp", http_client=httpx2.AsyncClient(headers=headers, timeout=120))


def text_of(result) -> str:  # type: ignore[no-untyped-def]
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


# --- what every transport must do -----------------------------------------------------------------
async def exercise(client: Client) -> dict[str, Any]:
    """Every tool once, the failures too; what they returned, for the callers to compare."""
    out: dict[str, Any] = {}
    tools = {t.name: t for t in (await client.list_tools()).tools}
    out["tools"] = tools
    out["ask"] = await client.call_tool("ask", {"question": QUESTION, "k": 3})
    out["search"] = await client.call_tool("search", {"question": QUESTION, "k": 2})
    out["list"] = await client.call_tool("list_documents", {})
    first = out["search"].structured_content["result"][0]
    out["doc"] = await client.call_tool("get_document", {"doc_id": first["doc_id"]})
    out["resource"] = await client.read_resource(f"news://documents/{first['doc_id']}")
    out["resources"] = await client.list_resources()
    out["bad_k"] = await client.call_tool("ask", {"question": QUESTION, "k": 0})
    out["blank"] = await client.call_tool("ask", {"question": "   "})
    out["bad_as_of"] = await client.call_tool("ask", {"question": QUESTION, "as_of": "someday"})
    out["missing"] = await client.call_tool("get_document", {"doc_id": "nope"})
    out["after_errors"] = await client.call_tool("search", {"question": QUESTION, "k": 1})
    out["timeline"] = await client.call_tool("timeline", {"question": QUESTION, "as_of": "2030-01-01"})
    out["timeline_doc_ids"] = await client.call_tool("timeline", {"question": QUESTION, "filters": {"doc_ids": ["a"]}})
    return out


def check(out: dict[str, Any], post: Callable[[str, dict], dict]) -> None:
    """The tools' answers against the HTTP API's JSON for the same requests (`post(path, body)`)."""
    def query_json(body: dict) -> dict:
        return post("/query", body)

    tools = out["tools"]
    assert set(tools) == TOOLS
    ask_schema = tools["ask"].input_schema
    assert ask_schema["required"] == ["question"]
    assert ask_schema["properties"]["k"]["maximum"] == 50 and ask_schema["properties"]["k"]["type"] == "integer"
    assert {"question", "k", "as_of", "choices", "filters", "generator"} <= set(ask_schema["properties"])
    assert tools["ask"].output_schema["title"] == "QueryResponse"
    # ask's structured output is the /query JSON for the same question
    ask = out["ask"]
    assert not ask.is_error
    assert ask.structured_content == query_json({"question": QUESTION, "k": 3})
    assert ask.structured_content["answer"]["citations"]
    # passages cite their document by offsets
    doc = out["doc"].structured_content
    passage = out["search"].structured_content["result"][0]
    assert doc["text"][passage["start"] : passage["end"]] == passage["text"]
    assert out["resource"].contents[0].text == doc["text"]
    assert f"news://documents/{doc['id']}" in {str(r.uri) for r in out["resources"].resources}
    assert len(out["list"].structured_content["result"]) == 5
    # errors: the sentence HTTP gives, as tool errors; the session goes on
    http_k0 = query_json({"question": QUESTION, "k": 0})["error"]
    assert out["bad_k"].is_error and text_of(out["bad_k"]) == http_k0 and "k" in http_k0
    assert out["blank"].is_error and text_of(out["blank"]) == query_json({"question": "   "})["error"]
    assert out["bad_as_of"].is_error and text_of(out["bad_as_of"]) == query_json({"question": QUESTION, "as_of": "someday"})["error"]
    assert out["missing"].is_error and text_of(out["missing"]) == "no document with id 'nope'"
    assert not out["after_errors"].is_error
    # timeline's structured output is the /timeline JSON; doc_ids is not one of its filters
    assert tools["timeline"].output_schema["title"] == "TimelineResponse"
    assert out["timeline"].structured_content == post("/timeline", {"question": QUESTION, "as_of": "2030-01-01"})
    assert out["timeline_doc_ids"].is_error and "doc_ids" in text_of(out["timeline_doc_ids"])


# --- stdio ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stdio_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("mcp-stdio")


def stdio(folder) -> StdioServerParameters:  # type: ignore[no-untyped-def]
    return StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp"], env=rag_env(folder), cwd=ROOT)


def test_stdio_tools_resources_and_errors(stdio_folder, client):
    out = run(exercise, stdio(stdio_folder))
    check(out, lambda path, body: client.post(path, json=body).json())


def test_stdio_writes_need_no_key(stdio_folder):
    async def write(c: Client) -> tuple:
        added = await c.call_tool("add_document", ARTICLE)
        again = await c.call_tool("add_document", ARTICLE)
        found = await c.call_tool("search", {"question": "Who restored the Cape Wrath lighthouse?", "k": 1})
        deleted = await c.call_tool("delete_document", {"doc_id": ARTICLE["id"]})
        gone = await c.call_tool("delete_document", {"doc_id": ARTICLE["id"]})
        empty = await c.call_tool("add_document", {"text": " "})
        return added, again, found, deleted, gone, empty

    added, again, found, deleted, gone, empty = run(write, stdio(stdio_folder))
    assert added.structured_content["added"] == [ARTICLE["id"]] and added.structured_content["chunks"] >= 1
    assert again.structured_content["unchanged"] == [ARTICLE["id"]]
    assert found.structured_content["result"][0]["doc_id"] == ARTICLE["id"]
    assert deleted.structured_content == {"id": ARTICLE["id"], "deleted": True}
    assert gone.is_error and text_of(gone) == f"no document with id {ARTICLE['id']!r}"
    assert empty.is_error and text_of(empty) == "text: Value error, text must not be empty"


# --- streamable HTTP in `rag serve` -----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with RagServe(tmp_path_factory.mktemp("mcp-http"), RAG_API_KEYS=KEY) as server:
        yield server


def test_http_tools_resources_and_errors(served):
    out = run(exercise, http_server(served.url))
    check(out, lambda path, body: httpx.post(f"{served.url}{path}", json=body, timeout=60).json())


def test_http_writes_follow_the_keys(served):
    async def write(c: Client) -> tuple:
        listed = {t.name for t in (await c.list_tools()).tools}
        refused = await c.call_tool("add_document", ARTICLE)
        refused_delete = await c.call_tool("delete_document", {"doc_id": "000_1447df4d8abbbe65"})
        return listed, refused, refused_delete

    listed, refused, refused_delete = run(write, http_server(served.url))
    assert {"add_document", "delete_document"} <= listed  # listed without a key; calling them is refused
    no_key = httpx.post(f"{served.url}/documents", json={"text": "x"}).json()["error"]
    assert refused.is_error and text_of(refused) == no_key
    assert refused_delete.is_error and text_of(refused_delete) == no_key
    assert httpx.get(f"{served.url}/documents/000_1447df4d8abbbe65").status_code == 200  # not deleted

    bad = run(lambda c: c.call_tool("add_document", ARTICLE), http_server(served.url, "not-the-key-0123456789"))
    assert bad.is_error and text_of(bad) == "the API key is not valid"

    async def keyed(c: Client) -> tuple:
        return await c.call_tool("add_document", ARTICLE), await c.call_tool("delete_document", {"doc_id": ARTICLE["id"]})

    added, deleted = run(keyed, http_server(served.url, KEY))
    assert not added.is_error and added.structured_content["added"] == [ARTICLE["id"]]
    assert not deleted.is_error and deleted.structured_content["deleted"] is True


def test_http_mcp_counts_in_metrics(served):
    run(lambda c: c.call_tool("get_document", {"doc_id": "nope"}), http_server(served.url))
    text = httpx.get(f"{served.url}/metrics").text
    assert 'rag_mcp_tool_calls_total{outcome="error",tool="get_document"}' in text
    assert 'rag_http_requests_total{method="POST",route="/mcp",status="200"}' in text


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
MCP_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}


def test_http_reads_need_a_key_with_protect_reads(make_service):
    from fastapi.testclient import TestClient

    from api.app import create_app

    app = create_app(make_service(api_keys=KEY, protect_reads=True))
    with TestClient(app) as c:
        refused = c.post("/mcp", json=INIT, headers=MCP_HEADERS)
        assert refused.status_code == 401 and refused.json()["error"] == c.post("/query", json={"question": "x"}).json()["error"]
        assert refused.headers["www-authenticate"] == "Bearer"
        wrong = c.post("/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": "Bearer wrong-key-0123456789"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "the API key is not valid"
        ok = c.post("/mcp", json=INIT, headers={**MCP_HEADERS, "authorization": f"Bearer {KEY}"})
        assert ok.status_code == 200 and ok.json()["result"]["serverInfo"]["name"] == "rag-news"


def test_http_mcp_follows_the_host_and_origin_rules(served):
    rebound = httpx.post(f"{served.url}/mcp", json=INIT, headers={**MCP_HEADERS, "host": "evil.example"})
    assert rebound.status_code == 421
    cross_site = httpx.post(f"{served.url}/mcp", json=INIT, headers={**MCP_HEADERS, "origin": "https://evil.example"})
    assert cross_site.status_code == 403
