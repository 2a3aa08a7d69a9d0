"""Web pages and feeds through the API: .html uploads, and the server's feed watcher (RAG_FEEDS)
started and stopped with a real uvicorn server, its state in `GET /health` over HTTP."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from api.app import create_app
from newsserver import BOILERPLATE_PHRASES, STORM, NewsServer, Route, news_page, rss


@pytest.fixture()
def site():
    server = NewsServer()
    yield server
    server.close()


def test_html_uploads_store_the_article_text_with_its_metadata(make_service):
    page = news_page("Café storm", STORM, published="Sep 6, 2022", author="Jane Reporter",
                     canonical="https://ledger.example/storm", meta_charset="windows-1252").encode("cp1252")
    with TestClient(create_app(make_service())) as c:
        r = c.post("/documents", files={"file": ("storm.html", page, "text/html")})
        assert r.status_code == 200, r.text
        doc = c.get("/documents/storm").json()
        assert doc["title"] == "Café storm" and doc["published"] == "2022-09-06"
        assert doc["source"] == "https://ledger.example/storm" and doc["author"] == "Jane Reporter"
        assert STORM[0] in doc["text"] and not [p for p in BOILERPLATE_PHRASES if p in doc["text"]]
        bad = c.post("/documents", files={"file": ("bad.htm", b"<p>caf\xff\xfe</p>", "text/html; charset=utf-8")})
        assert bad.status_code == 400 and "bad.htm is not valid utf-8" in bad.json()["error"]
        empty = c.post("/documents", files={"file": ("empty.html", b"<html><body></body></html>", "text/html")})
        assert empty.status_code == 422 and "no article text" in empty.json()["error"]


def test_the_server_watches_its_feeds_and_health_shows_them(site, make_service):
    site.routes["/storm.html"] = Route(news_page("Storm floods the coast", STORM).encode())
    site.routes["/feed.xml"] = Route(rss([{"title": "Storm", "link": site.url("/storm.html"),
                                           "date": "Tue, 06 Sep 2022 12:30:00 GMT"}]), content_type="application/rss+xml")
    site.routes["/broken.xml"] = Route(b"oops", status=500, validators=False)
    feeds = [site.url("/feed.xml"), site.url("/broken.xml")]
    service = make_service(fetch_allow_private=True, fetch_timeout_s=0.5, feeds=",".join(feeds), feed_every="1s")
    server = uvicorn.Server(uvicorn.Config(create_app(service), host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        health: dict = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
            if all(f["last_poll"] for f in health.get("feeds") or [{}]) and health["documents"] == 1:
                break
            time.sleep(0.1)
        ok, broken = health["feeds"]
        assert ok["url"] == feeds[0] and ok["last_success"] and ok["error"] is None and ok["articles"] == 1
        assert broken["url"] == feeds[1] and broken["last_success"] is None and "HTTP 500" in broken["error"]
        assert broken["failures"] >= 1 and health["status"] == "ok"  # a broken feed never stops the server
    finally:
        server.should_exit = True
        thread.join(15)
    assert not thread.is_alive() and service.watcher is None  # stopped with the server
