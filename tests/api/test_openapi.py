"""The OpenAPI document per setting: who needs a key, which codes each operation answers, and the
patterns it states being the very rules the server applies."""

from __future__ import annotations

import re
import unicodedata

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.openapi import NOT_BLANK_PATTERN, OPERATIONS, UPLOAD_FILENAME_PATTERN
from rag.config import Settings
from rag.ingestion.documents import ID_PATTERN, has_visible

KEY = "k" * 8 + "-openapi-test-key-01"
READS = {("post", "/query"), ("post", "/query/stream"), ("post", "/timeline"), ("get", "/documents"),
         ("get", "/documents/{doc_id}"), ("get", "/watches"), ("get", "/watches/{watch_id}"),
         ("get", "/watches/{watch_id}/events")}
WRITES = {("post", "/documents"), ("delete", "/documents/{doc_id}"), ("post", "/watches"), ("delete", "/watches/{watch_id}")}


def spec_for(**settings) -> dict:
    return TestClient(create_app(settings=Settings(**settings))).get("/openapi.json").json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, op in item.items():
            yield (method, path), op


@pytest.mark.parametrize(
    "settings,secured",
    [
        ({}, set()),
        ({"api_keys": KEY}, WRITES),
        ({"api_keys": KEY, "protect_reads": True}, WRITES | READS),
        ({"protect_reads": True}, set()),  # nothing to check a key against (`rag serve` refuses this)
    ],
    ids=["no keys", "keys", "keys, protected reads", "protected reads without keys"],
)
def test_security_per_operation_and_setting(settings, secured):
    spec = spec_for(**settings)
    seen = set()
    for key, op in operations(spec):
        seen.add(key)
        assert ("security" in op) == (key in secured), key
        assert ("401" in op["responses"]) == (key in secured), key
        if key in secured:
            assert op["security"] == [{"apiKey": []}]
            assert op["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert seen == set(OPERATIONS), "every operation is described, and only those"
    assert ("apiKey" in spec["components"].get("securitySchemes", {})) == bool(secured)


def test_the_server_enforces_the_declared_security(make_service):
    c = TestClient(create_app(make_service(api_keys=KEY)))
    for (method, path), op in operations(c.get("/openapi.json").json()):
        url = path.replace("{doc_id}", "some-id").replace("{watch_id}", "w_some")
        body = {"json": {"question": "ferry"}} if path.startswith(("/query", "/timeline")) else {}
        if path == "/documents" and method == "post":
            body = {"json": {"text": "Ferry news."}}
        r = c.request(method.upper(), url, **body)
        assert (r.status_code == 401) == ("security" in op), (method, path, r.status_code)


def test_each_operation_lists_exactly_its_codes():
    for key, op in operations(spec_for(api_keys=KEY)):
        errors = {int(c) for c in op["responses"] if not c.startswith("2")}
        assert errors == set(OPERATIONS[key][1]) | ({401} if "security" in op else set()), key
        for code in errors:
            assert op["responses"][str(code)]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorOut"}
    assert "HTTPValidationError" not in spec_for()["components"]["schemas"]


def test_ids_are_stated_by_the_server_rule():
    spec = spec_for()
    for method in ("get", "delete"):
        (param,) = spec["paths"]["/documents/{doc_id}"][method]["parameters"]
        assert param["schema"] == {"type": "string", "minLength": 1, "maxLength": 200, "pattern": ID_PATTERN}
    body = spec["paths"]["/documents"]["post"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["properties"]["id"]["anyOf"][0]["pattern"] == ID_PATTERN


def test_the_upload_is_one_file_with_a_supported_name():
    upload = spec_for()["paths"]["/documents"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert upload["schema"]["required"] == ["file"] and upload["schema"]["additionalProperties"] is False
    header = upload["encoding"]["file"]["headers"]["Content-Disposition"]
    assert header["schema"]["pattern"] == UPLOAD_FILENAME_PATTERN
    rx = re.compile(UPLOAD_FILENAME_PATTERN)
    for name in ("a.txt", "b.MD", "c.jsonl", "d.JSONL.GZ", "x y.Txt", "page.html", "old.HTM"):
        assert rx.search(f'form-data; name="file"; filename="{name}"'), name
    for name in ("a.pdf", "b.gz", "c.json", "d.txt.zip", "noext"):
        assert not rx.search(f'form-data; name="file"; filename="{name}"'), name


def test_text_patterns_are_the_server_rules():
    """Every BMP character alone and around a letter: the patterns agree with the Python checks."""
    props = spec_for()["paths"]["/documents"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"]
    text_rx = re.compile(props["text"]["pattern"])
    title_rx = re.compile(props["title"]["anyOf"][0]["pattern"])
    blank_rx = re.compile(NOT_BLANK_PATTERN)
    for cp in range(0x10000):
        c = chr(cp)
        if unicodedata.category(c) == "Cs":
            continue
        for s in (c, f"a{c}", c * 2):
            assert bool(text_rx.search(s)) == (has_visible(s) and "\x00" not in s), repr(s)
            assert bool(title_rx.search(s)) == has_visible(s), repr(s)
            assert bool(blank_rx.search(s)) == bool(s.strip()), repr(s)
    for name in ("Query", "TimelineQuery"):
        query = spec_for()["components"]["schemas"][name]
        assert query["properties"]["question"]["pattern"] == NOT_BLANK_PATTERN, name
        assert "published_after" in query["description"], name


@pytest.mark.parametrize("settings", [{}, {"api_keys": KEY, "protect_reads": True}])
def test_every_reference_resolves(settings):
    spec = spec_for(**settings)

    def refs(node):
        if isinstance(node, dict):
            if "$ref" in node:
                yield node["$ref"]
            for value in node.values():
                yield from refs(value)
        elif isinstance(node, list):
            for value in node:
                yield from refs(value)

    found = set(refs(spec))
    assert "#/components/schemas/ErrorOut" in found
    for ref in found:
        node = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"{ref} does not resolve"
            node = node[part]

