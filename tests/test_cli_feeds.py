"""`rag ingest URL` and `rag watch --once` end to end: a subprocess against a news site on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from newsserver import BUDGET, FESTIVAL, STORM, NewsServer, Route, atom, news_page, rss

ROOT = Path(__file__).resolve().parents[1]
RAG = [sys.executable, "-m", "rag.cli"]


@pytest.fixture()
def site():
    server = NewsServer()
    server.routes["/storm.html"] = Route(news_page("Storm floods the coast", STORM, published="2022-09-06").encode())
    server.routes["/budget.html"] = Route(news_page("Budget raises spending", BUDGET).encode())
    server.routes["/festival.html"] = Route(news_page("Festival record", FESTIVAL).encode())
    server.routes["/feed.xml"] = Route(rss([
        {"title": "Storm", "link": server.url("/storm.html"), "date": "Tue, 06 Sep 2022 12:30:00 GMT"},
        {"title": "Budget", "link": server.url("/budget.html"), "date": "Wed, 07 Sep 2022 09:00:00 GMT"},
    ]), content_type="application/rss+xml")
    yield server
    server.close()


def run(folder: Path, *args: str, private: bool = True, **extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, **extra, "RAG_INDEX_DIR": str(folder / "index"), "RAG_CACHE_DIR": str(ROOT / ".cache"),
           "RAG_SEEDS_DIR": str(folder / "no-seeds"), "RAG_FETCH_TIMEOUT_S": "0.5", "HF_HUB_OFFLINE": "1"}
    if private:
        env["RAG_FETCH_ALLOW_PRIVATE"] = "true"
    return subprocess.run(RAG + list(args), cwd=folder, capture_output=True, text=True, timeout=300, env=env)


def test_ingest_a_page_url_and_a_feed_url(site, tmp_path):
    r = run(tmp_path, "ingest", site.url("/festival.html"))
    assert r.returncode == 0, r.stderr
    assert "1 added" in r.stdout
    r = run(tmp_path, "ingest", site.url("/feed.xml"))
    assert r.returncode == 0, r.stderr
    assert "2 added" in r.stdout and "0 unchanged" in r.stdout
    r = run(tmp_path, "ask", "What did the finance minister present?", "--json", "--after", "2022-09-07")
    assert r.returncode == 0, r.stderr
    assert '"title": "Budget raises spending"' in r.stdout and '"published": "2022-09-07T09:00:00Z"' in r.stdout


def test_ingest_refuses_private_addresses_without_the_setting(site, tmp_path):
    r = run(tmp_path, "ingest", site.url("/storm.html"), private=False)
    assert r.returncode == 1 and "loopback, private or reserved address" in r.stderr and "Traceback" not in r.stderr
    assert site.hits == []


def test_watch_once_polls_ingests_and_reports_each_feed(site, tmp_path):
    site.routes["/wire.xml"] = Route(atom([{"title": "Festival", "link": site.url("/festival.html"),
                                            "updated": "2022-09-08T10:00:00Z"}]), content_type="application/atom+xml")
    r = run(tmp_path, "watch", site.url("/feed.xml"), site.url("/wire.xml"), "--once", "--every", "10m")
    assert r.returncode == 0, r.stderr
    assert f"{site.url('/feed.xml')}: 2 new, 0 replaced" in r.stderr and "+ Storm floods the coast" in r.stderr
    assert f"{site.url('/wire.xml')}: 1 new" in r.stderr and "next poll in 10 min" in r.stderr
    r = run(tmp_path, "watch", site.url("/feed.xml"), "--once")
    assert r.returncode == 0 and f"{site.url('/feed.xml')}: not modified" in r.stderr  # state kept in the index
    site.routes["/feed.xml"] = Route(b"down", status=502, validators=False)
    r = run(tmp_path, "watch", site.url("/feed.xml"), site.url("/wire.xml"), "--once")
    assert r.returncode == 1 and "HTTP 502" in r.stderr and "1 of 2 feed(s) could not be read" in r.stderr
    assert f"{site.url('/wire.xml')}: not modified" in r.stderr
    r = run(tmp_path, "watch", site.url("/feed.xml"), "--every", "soon")
    assert r.returncode == 2 and "unreadable duration" in r.stderr
    site.routes["/feed.xml"] = Route(b"<rss version='2.0'><channel><title>x</title></channel></rss>",
                                     content_type="application/rss+xml")
    r = run(tmp_path, "watch", "--once", RAG_FEEDS=site.url("/feed.xml"))  # the feeds of the setting
    assert r.returncode == 0 and f"{site.url('/feed.xml')}: 0 new" in r.stderr, r.stderr
    r = run(tmp_path, "watch", "--once", RAG_FEEDS="")
    assert r.returncode == 2 and "no feeds" in r.stderr
