"""Hostile request bodies on every route get a 4xx JSON sentence, never a 500: deep nesting, wide
arrays, huge numbers, NaN, repeated keys, bad UTF-8, lone surrogates, NUL, wrong JSON types,
invisible articles; and a 405 names every method the path serves."""

from __future__ import annotations

import gzip
import json

import pytest
from fastapi.testclient import TestClient

from api.app import create_app

JSON = {"content-type": "application/json"}
ROUTES = ["/query", "/query/stream", "/documents"]


@pytest.fixture()
def api(make_service):
    with TestClient(create_app(make_service()), raise_server_exceptions=False) as c:
        yield c


def assert_sentence(r, status: int, phrase: str = "") -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    error = r.json()["error"]
    assert isinstance(error, str) and phrase in error and "Traceback" not in r.text


DEEP = {
    "arrays, 300k deep": b"[" * 300_000 + b"]" * 300_000,
    "objects, 300k deep": b'{"a":' * 300_000 + b"1" + b"}" * 300_000,
    "deep inside a field": b'{"question": "x", "doc_ids": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "deep and never closed": b"[" * 1_000_000,
    "just past the limit": b'{"question": "x", "k": ' + b"[" * 64 + b"]" * 64 + b"}",
}


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("body", DEEP.values(), ids=DEEP.keys())
def test_deep_nesting_is_400_on_every_route(api, route, body):
    assert_sentence(api.post(route, content=body, headers=JSON), 400, "nested deeper than 64 levels")


@pytest.mark.parametrize("route", ROUTES)
def test_deep_looking_strings_are_only_text(api, route):
    body = {"question": "[" * 5000 + "{" * 5000} if route != "/documents" else {"text": "Ferry [[[[ " * 1000}
    r = api.post(route, json=body)
    assert r.status_code in (200, 422), r.text  # read as text: 2000 characters is the question's limit
    if r.status_code == 422:
        assert "2000" in r.json()["error"]


@pytest.mark.parametrize(
    "route,body,status,phrase",
    [
        ("/query", b'{"question": "x", "k": ' + b"9" * 5000 + b"}", 400, "more than 4300 digits"),
        ("/documents", b'{"text": "Ferry", "title": ' + b"9" * 5000 + b"}", 400, "more than 4300 digits"),
        ("/query", b'{"question": "x", "recency": 1e999}', 422, "recency"),
        ("/query", b'{"question": "x", "recency": NaN}', 400, "NaN is not a JSON number"),
        ("/query/stream", b'{"question": "x", "recency": -Infinity}', 400, "-Infinity is not a JSON number"),
        ("/documents", b'{"text": "Ferry", "published": Infinity}', 400, "Infinity"),
        ("/query", b'{"question": "a", "question": "b"}', 400, "the key 'question' appears twice"),
        ("/documents", b'{"text": "Ferry", "text": "Other"}', 400, "appears twice"),
        ("/query", b'{"question": "caf\xff"}', 400, "not UTF-8: invalid byte at offset 17"),
        ("/query", '{"question": "x"}'.encode("utf-16"), 400, "not UTF-8"),
        ("/query", b'{"question": "x\\ud800"}', 422, "question"),
        ("/documents", b'{"text": "Ferry \\udc00 news"}', 422, "unicode"),
        ("/documents", b'{"text": "Ferry\\u0000news"}', 422, "NUL character at offset 5"),
        ("/query", b'{"question": "x", "doc_ids": [' + b",".join([b'"a"'] * 200_000) + b"]}", 422, "1000"),
        ("/documents", b'{"text": "Ferry", "extra": [' + b",".join([b"1"] * 200_000) + b"]}", 422, "extra"),
        ("/query", b'{"question": "x", "answer": 1}', 422, "answer: the number 1 where true or false"),
        ("/query", b'{"question": "x", "k": "5"}', 422, "k: a string where an integer"),
        ("/query", b'{"question": "x", "published_after": 0}', 422, "published_after: the number 0"),
        ("/query/stream", b'{"question": "x", "doc_ids": ["a", 3]}', 422, "doc_ids[1]"),
        ("/query", b'["a list"]', 422, "an array where a JSON object is expected"),
        ("/query", b'"just a string"', 422, "a string where a JSON object"),
        ("/documents", b"null", 422, "null where a JSON object"),
        ("/documents", b'{"text": "Ferry", "published": "0001-01-01T00:00:00+05:00"}', 422, "out-of-range date"),
        ("/documents", b'{"text": "Ferry", "published": "9999-12-31T23:59:59-05:00"}', 422, "out-of-range date"),
        ("/query", b'{"question": "x", "as_of": "0001-01-01T01:00:00+02:00"}', 422, "out-of-range date"),
        ("/query", b"{not json", 400, "not valid JSON"),
        ("/query", b'{"question": "tab\there"}', 400, "Invalid control character"),
    ],
)
def test_hostile_values_get_a_sentence(api, route, body, status, phrase):
    assert_sentence(api.post(route, content=body, headers=JSON), status, phrase)


def test_a_byte_order_mark_and_json_subtypes_are_read(api):
    r = api.post("/query", content=b'\xef\xbb\xbf{"question": "ferry"}', headers=JSON)
    assert r.status_code == 200, r.text
    r = api.post("/query", content=b'{"question": "ferry", "k": 2.0}', headers={"content-type": "application/x+json"})
    assert r.status_code == 200, r.text  # 2.0 is an integer to JSON Schema, so it is one here
    assert_sentence(api.post("/documents", content=b"[" * 100_000, headers={"content-type": "application/ld+json"}),
                    400, "nested deeper")


INVISIBLE_TEXTS = ["\u200b\u200b", "\ufeff\u00ad", "\u202e\u2066", " \t\u3000\u2028", "\u0301\u0301", "\ue000",
                   "\u3164\u3164", "***"]


@pytest.mark.parametrize("text", INVISIBLE_TEXTS)
def test_invisible_articles_are_refused_on_every_path(api, text):
    assert_sentence(api.post("/documents", json={"id": "ghost", "text": text}), 422)
    r = api.post("/documents", files={"file": ("ghost.txt", text.encode(), "text/plain")})
    assert_sentence(r, 422, "ghost")
    lines = (json.dumps({"text": "A visible one."}) + "\n" + json.dumps({"id": "ghost", "text": text}) + "\n").encode()
    for name, data in (("ghosts.jsonl", lines), ("ghosts.jsonl.gz", gzip.compress(lines))):
        r = api.post("/documents", files={"file": (name, data, "application/octet-stream")})
        assert r.status_code == 422 and f"{name}:2" in r.json()["error"], r.text
    assert api.get("/health").json()["documents"] == 0, "nothing of a refused request is kept"


@pytest.mark.parametrize(
    "record,phrase",
    [
        ({"id": "\u200b", "text": "Ferry news."}, "ZERO WIDTH SPACE"),
        ({"id": "a\u202eb", "text": "Ferry news."}, "RIGHT-TO-LEFT OVERRIDE"),
        ({"id": "   ", "text": "Ferry news."}, "only spaces"),
        ({"id": "\u3000", "text": "Ferry news."}, "IDEOGRAPHIC SPACE"),
        ({"title": "\u200b", "text": "Ferry news."}, "title"),
        ({"title": "", "text": "Ferry news."}, "title"),
        ({"published": "", "text": "Ferry news."}, "published"),
    ],
)
def test_invisible_ids_and_titles_are_refused(api, record, phrase):
    assert_sentence(api.post("/documents", json=record), 422, phrase)


def test_the_stored_text_is_the_text_sent(api):
    text = "\ufeff\u200bFerry\u00ad resumes\u200d after the storm.\u2028Next line\u3000here."
    r = api.post("/documents", json={"id": "ferry", "text": text})
    assert r.status_code == 200, r.text
    assert api.get("/documents/ferry").json()["text"] == text


def test_an_upload_takes_only_its_file_field(api):
    r = api.post("/documents", files={"file": ("a.txt", b"Ferry news.", "text/plain")}, data={"note": "hi"})
    assert_sentence(r, 422, "'note' is not one")
    fields = {f"f{i}": "x" for i in range(20)}
    assert_sentence(api.post("/documents", files={"file": ("a.txt", b"Ferry news.", "text/plain")}, data=fields), 400)


@pytest.mark.parametrize(
    "method,path,allow",
    [
        ("PUT", "/documents/some-id", "GET, DELETE"),
        ("OPTIONS", "/documents/some-id", "GET, DELETE"),
        ("PATCH", "/documents", "GET, POST"),
        ("GET", "/query", "POST"),
        ("DELETE", "/health", "GET"),
    ],
)
def test_405_names_every_method_served(api, method, path, allow):
    r = api.request(method, path)
    assert_sentence(r, 405, allow)
    assert r.headers["allow"] == allow


def test_no_redirect_for_a_trailing_slash(api):
    assert api.get("/documents/", follow_redirects=False).status_code == 404
