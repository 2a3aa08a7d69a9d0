"""Writing through HTTP: add, replace, delete, uploads and their limits, and reads during an ingest.

Every test writes to its own throwaway index (`make_service`), never to the shared seeds index.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from eval.load import synthetic_article, unique_word


@pytest.fixture()
def api(make_service):
    """A client over a fresh, empty index; `api(**settings)` for one with other limits."""
    clients = []

    def build(**overrides) -> TestClient:
        service = make_service(**overrides)
        c = TestClient(create_app(service))
        c.__enter__()
        c.service = service  # type: ignore[attr-defined]
        clients.append(c)
        return c

    yield build
    for c in clients:
        c.__exit__(None, None, None)


def ask(client: TestClient, question: str, **extra) -> list[dict]:
    r = client.post("/query", json={"question": question, "k": 10, **extra})
    assert r.status_code == 200, r.text
    passages = r.json()["passages"]
    assert_consistent(client, passages)
    return passages


def assert_consistent(client: TestClient, passages: list[dict]) -> None:
    """Each passage is its document's text at its offsets, and its document exists."""
    for p in passages:
        r = client.get(f"/documents/{p['doc_id']}")
        assert r.status_code == 200, f"passage of a missing document: {p['chunk_id']}"
        assert r.json()["text"][p["start"] : p["end"]] == p["text"], p["chunk_id"]


def upload(client: TestClient, name: str, data: bytes):
    return client.post("/documents", files={"file": (name, data, "application/octet-stream")})


ARTICLE = (
    "Harbour tramline extended\n\nThe council of Brackwater voted to extend the harbour tramline by six stops. "
    "The scheme, nicknamed zanzibarquartz by engineers, opens next spring."
)


def test_add_query_change_query_delete_query(api):
    c = api()
    r = c.post("/documents", json={"id": "tram-1", "title": "Harbour tramline", "url": "https://x.example/t",
                                   "published": "2024-03-01", "text": ARTICLE})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == ["tram-1"] and body["documents"][0]["status"] == "added"
    chunks = body["documents"][0]["chunks"]
    assert chunks >= 1 and body["chunks"] == chunks
    for mode in ("lexical", "hybrid"):
        assert any(p["doc_id"] == "tram-1" for p in ask(c, "zanzibarquartz", mode=mode))

    again = c.post("/documents", json={"id": "tram-1", "title": "Harbour tramline", "url": "https://x.example/t",
                                       "published": "2024-03-01", "text": ARTICLE}).json()
    assert again["unchanged"] == ["tram-1"] and again["chunks"] == 0
    assert again["documents"] == [{"id": "tram-1", "status": "unchanged", "chunks": chunks}]

    changed = ARTICLE.replace("zanzibarquartz", "obsidianfalcon")
    r = c.post("/documents", json={"id": "tram-1", "title": "Harbour tramline", "text": changed})
    assert r.json()["replaced"] == ["tram-1"]
    assert c.get("/documents/tram-1").json()["text"] == changed
    for mode in ("lexical", "hybrid", "dense"):
        passages = ask(c, "zanzibarquartz", mode=mode)
        assert not any("zanzibarquartz" in p["text"] for p in passages), "a stale chunk of the old version"
    assert any(p["doc_id"] == "tram-1" for p in ask(c, "obsidianfalcon", mode="lexical"))

    r = c.delete("/documents/tram-1")
    assert r.status_code == 200 and r.json() == {"id": "tram-1", "deleted": True}
    for mode in ("lexical", "hybrid", "dense"):
        assert not any(p["doc_id"] == "tram-1" for p in ask(c, "obsidianfalcon harbour tramline", mode=mode))
    assert c.get("/documents/tram-1").status_code == 404
    assert c.get("/health").json()["chunks"] == 0
    r = c.delete("/documents/tram-1")
    assert r.status_code == 404 and "tram-1" in r.json()["error"]


def test_id_is_derived_like_the_jsonl_loader(api):
    c = api()
    r = c.post("/documents", json={"url": "https://news.example/a/1", "text": "Ferry contract signed in Port Venn."})
    expected = hashlib.sha1(b"https://news.example/a/1").hexdigest()[:16]
    assert r.json()["added"] == [expected]
    doc = c.get(f"/documents/{expected}").json()
    assert doc["source"] == "https://news.example/a/1"
    r = c.post("/documents", json={"url": "https://news.example/a/1", "text": "Ferry contract signed in Port Venn."})
    assert r.json()["unchanged"] == [expected]
    r = c.post("/documents", json={"text": "No url: the id comes from the text."})
    assert r.json()["added"] == [hashlib.sha1(b"No url: the id comes from the text.").hexdigest()[:16]]


@pytest.mark.parametrize(
    "record,status,phrase",
    [
        ({"id": "a/b", "text": "x"}, 422, "path separator"),
        ({"id": "a\\b", "text": "x"}, 422, "path separator"),
        ({"id": "a\x01b", "text": "x"}, 422, "control character"),
        ({"id": "..", "text": "x"}, 422, "path separator"),
        ({"id": "x" * 201, "text": "x"}, 422, "200"),
        ({"id": "", "text": "x"}, 422, "id"),
        ({"id": "ok", "text": ""}, 422, "text"),
        ({"id": "ok", "text": "   \n "}, 422, "empty"),
        ({"id": "ok"}, 422, "text"),
        ({"id": "ok", "text": "x", "body": "surprise"}, 422, "body"),
        ({"id": "ok", "text": 42}, 422, "text"),
        ({"id": "ok", "text": "caf\ud800"}, 422, "unicode"),
    ],
)
def test_bad_documents_get_a_sentence(api, record, status, phrase):
    c = api()
    r = c.post("/documents", content=json.dumps(record), headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    assert phrase in r.json()["error"]


@pytest.mark.parametrize(
    "content,ctype,status,phrase",
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b'{"text": "caf\xff"}', "application/json", 400, "offset 13"),
        (b'["a list"]', "application/json", 422, "JSON object"),
        (b"text=hello", "application/x-www-form-urlencoded", 415, "multipart"),
        (b"hello", "text/plain", 415, "application/json"),
    ],
)
def test_bad_bodies_get_a_sentence(api, content, ctype, status, phrase):
    c = api()
    r = c.post("/documents", content=content, headers={"content-type": ctype})
    assert r.status_code == status, r.text
    assert phrase in r.json()["error"]


def test_bad_id_on_delete(api):
    c = api()
    r = c.delete("/documents/a%5Cb")
    assert r.status_code == 422 and "path separator" in r.json()["error"]
    r = c.delete("/documents/" + "x" * 201)
    assert r.status_code == 422 and "200" in r.json()["error"]


def test_uploads_of_each_file_type(api):
    c = api()
    r = upload(c, "storm-report.txt", b"Storm closes ferry\n\nThe ferry to Eastholm was cancelled all week.")
    assert r.status_code == 200, r.text
    assert r.json()["added"] == ["storm-report"]
    doc = c.get("/documents/storm-report").json()
    assert doc["title"] == "Storm closes ferry" and doc["source"] == "storm-report.txt"
    assert upload(c, "storm-report.txt", b"Storm closes ferry\n\nThe ferry to Eastholm was cancelled all week.").json()[
        "unchanged"] == ["storm-report"]
    assert upload(c, "C:\\Users\\x\\notes.md", b"# Budget vote\n\nThe budget passed by two votes.").json()[
        "added"] == ["notes"]

    records = [synthetic_article(i) for i in range(3)]
    records[1].pop("id")
    lines = "\n".join(json.dumps(r) for r in records).encode() + b"\n\n"
    body = upload(c, "batch.jsonl", lines).json()
    derived = hashlib.sha1(records[1]["url"].encode()).hexdigest()[:16]
    assert body["added"] == ["syn-00000", derived, "syn-00002"]
    assert [d["status"] for d in body["documents"]] == ["added"] * 3
    body = upload(c, "batch.jsonl.gz", gzip.compress(lines)).json()
    assert body["unchanged"] == ["syn-00000", derived, "syn-00002"]
    assert all(d["chunks"] >= 1 for d in body["documents"])
    assert any(p["doc_id"] == "syn-00002" for p in ask(c, unique_word(2), mode="lexical"))


@pytest.mark.parametrize(
    "name,data,status,phrase",
    [
        ("bad.txt", b"Caf\xc3\xa9 \xff here", 400, "offset 6"),
        ("bad.jsonl", b'{"text": "fine"}\n{"text": "caf\xff"}\n', 400, "bad.jsonl:2 is not UTF-8: invalid byte at offset 30 of the file (offset 13 of line 2)"),
        ("bad.jsonl", b'{"text": "fine"}\n{oops\n', 400, "bad.jsonl:2: invalid JSON"),
        ("bad.jsonl", b'{"text": "fine"}\n{"title": "no text"}\n', 422, "bad.jsonl:2: `text` is missing"),
        ("bad.jsonl", b'{"id": "a/b", "text": "x"}\n', 422, "path separator"),
        ("empty.jsonl", b"\n\n", 422, "no documents"),
        ("empty.txt", b"  \n ", 422, "empty"),
        ("bad.jsonl.gz", b"not gzip at all", 400, "gzip"),
        ("report.pdf", b"%PDF-1.4", 415, ".jsonl.gz"),
        ("noextension", b"hello", 415, ".txt"),
        (".txt", b"hello", 422, "id"),
    ],
)
def test_bad_uploads_get_a_sentence(api, name, data, status, phrase):
    c = api()
    r = upload(c, name, data)
    assert r.status_code == status, r.text
    assert phrase in r.json()["error"]


def test_upload_needs_the_file_field(api):
    c = api()
    r = c.post("/documents", files={"other": ("a.txt", b"hello", "text/plain")})
    assert r.status_code == 422 and "`file`" in r.json()["error"]
    r = c.post("/documents", files=[("file", ("a.txt", b"one", "text/plain")), ("file", ("b.txt", b"two", "text/plain"))])
    assert r.status_code == 400 and "error" in r.json()


def test_limits_answer_413(api):
    c = api(max_body_bytes=2048, max_upload_bytes=4096, max_docs_per_upload=2, max_upload_expanded_bytes=8192)
    r = c.post("/documents", json={"text": "word " * 1000})
    assert r.status_code == 413 and "RAG_MAX_BODY_BYTES" in r.json()["error"]

    def chunks():  # no Content-Length: the middleware counts the bytes as they stream in
        for _ in range(10):
            yield b" " * 1000

    r = c.post("/query", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "2 KiB" in r.json()["error"]
    r = upload(c, "big.txt", b"word " * 2000)
    assert r.status_code == 413 and "RAG_MAX_UPLOAD_BYTES" in r.json()["error"]

    def multipart():  # an upload streamed without Content-Length, far over the limit
        yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.txt"\r\n\r\n'
        for _ in range(100):
            yield b"y" * 1000

    r = c.post("/documents", content=multipart(), headers={"content-type": "multipart/form-data; boundary=b"})
    assert r.status_code == 413 and r.json()["error"] == "the upload is larger than 4 KiB (RAG_MAX_UPLOAD_BYTES)"
    many = "\n".join(json.dumps({"text": f"article {i}"}) for i in range(3)).encode()
    r = upload(c, "many.jsonl", many)
    assert r.status_code == 413 and "RAG_MAX_DOCS_PER_UPLOAD" in r.json()["error"]
    bomb = gzip.compress(b"\n" * 1_000_000)
    assert len(bomb) < 4096
    r = upload(c, "bomb.jsonl.gz", bomb)
    assert r.status_code == 413 and "RAG_MAX_UPLOAD_EXPANDED_BYTES" in r.json()["error"]
    assert c.get("/health").json()["documents"] == 0
    assert c.post("/query", json={"question": "ok"}).status_code == 200


def test_queries_stay_consistent_during_a_big_ingest(api):
    """Queries answer from the last committed index while an ingest commits batch after batch."""
    c = api()
    service = c.service
    service.ingestor.commit_chunks = 8  # many small commits instead of one
    service.ingest(_docs(range(0, 12)))
    big = _docs(range(12, 160))
    done = threading.Event()
    failures: list[BaseException] = []

    def ingest() -> None:
        try:
            service.ingest(big)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            failures.append(exc)
        finally:
            done.set()

    thread = threading.Thread(target=ingest)
    generations = {service.index.store.generation()}
    texts: dict[str, str] = {}
    queries = 0
    thread.start()
    while not done.is_set() or queries < 5:
        n = 12 + (queries * 7) % 148
        r = c.post("/query", json={"question": f"Where is {unique_word(n)}?", "k": 5, "mode": ["hybrid", "lexical"][queries % 2]})
        assert r.status_code == 200, r.text
        for p in r.json()["passages"]:
            if p["doc_id"] not in texts:
                texts[p["doc_id"]] = service.document(p["doc_id"]).text  # documents are only added here
            assert texts[p["doc_id"]][p["start"] : p["end"]] == p["text"], p["chunk_id"]
        generations.add(service.index.store.generation())
        queries += 1
    thread.join()
    assert not failures, failures
    assert len(generations) >= 3, f"the ingest should commit several times during the queries: {generations}"
    assert service.health().documents == 160
    assert any(p["doc_id"] == "syn-00150" for p in ask(c, unique_word(150), mode="lexical"))


def _docs(ns):
    from rag.ingestion.documents import document_from_record

    return [document_from_record(synthetic_article(n), f"synthetic {n}") for n in ns]


def test_reads_during_writes_through_http(api):
    """Interleaved HTTP writes and reads from threads: no errors, every passage consistent."""
    c = api()
    assert c.post("/documents", json=synthetic_article(0)).status_code == 200
    stop = threading.Event()
    errors: list[str] = []

    def read() -> None:
        while not stop.is_set():
            r = c.post("/query", json={"question": "council vote harbour", "k": 5, "mode": "lexical"})
            if r.status_code != 200:
                errors.append(r.text)
                continue
            for p in r.json()["passages"]:
                d = c.get(f"/documents/{p['doc_id']}")
                if d.status_code == 200 and d.json()["text"][p["start"] : p["end"]] != p["text"]:
                    errors.append(f"inconsistent {p['chunk_id']}")

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    try:
        for n in range(1, 9):
            assert c.post("/documents", json=synthetic_article(n)).status_code == 200
            if n % 2 == 0:
                assert c.delete(f"/documents/syn-{n - 1:05d}").status_code == 200
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[:3]
