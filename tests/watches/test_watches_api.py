"""Standing questions over HTTP: the routes' answers and sentences, keys on writes, and a
delivery set off by `POST /documents` on a live uvicorn server."""

from __future__ import annotations

import json
import time

import httpx
from fastapi.testclient import TestClient

from api.app import create_app
from support import LiveServer

QUESTION = "What does Russia demand on NATO?"
KEY = "watch-key-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {KEY}"}
ARTICLE = {
    "id": "nato-demand", "title": "Russia restates its NATO demand", "published": "2025-03-20",
    "text": "Russia's foreign ministry said on Friday that Moscow demands written guarantees that NATO will never "
    "admit Ukraine or Georgia as members. The demand was handed to American diplomats in Geneva.",
}


def test_watch_routes_need_a_key_to_write_refuse_bad_webhooks_and_unknown_ids(make_service, receiver):
    service = make_service(api_keys=KEY, fetch_allow_hosts="127.0.0.1")
    with TestClient(create_app(service)) as c:
        body = {"question": QUESTION, "url": receiver.url}
        r = c.post("/watches", json=body)
        assert r.status_code == 401 and "Authorization: Bearer" in r.json()["error"]
        for url, says in [
            ("http://10.0.0.7/hook", "10.0.0.7, a loopback, private or reserved address (RAG_FETCH_ALLOW_PRIVATE"),
            ("file:///etc/passwd", "only http and https"),
            ("http://no-such-host.invalid/", "cannot resolve no-such-host.invalid"),
        ]:
            r = c.post("/watches", json={**body, "url": url}, headers=AUTH)
            assert r.status_code == 422 and r.json()["error"].startswith("webhook URL refused: ") and says in r.json()["error"]
        r = c.post("/watches", json={**body, "secret": "hunter2"}, headers=AUTH)
        assert r.status_code == 422 and "whsec_" in r.json()["error"]
        r = c.post("/watches", json={**body, "min_relevance": 2}, headers=AUTH)
        assert r.status_code == 422 and r.json()["error"].startswith("min_relevance:")
        r = c.post("/watches", json={**body, "filters": {"published_after": "2025-03-02", "published_before": "2025-03-01"}},
                   headers=AUTH)
        assert r.status_code == 422 and "published_after is later" in r.json()["error"]
        assert c.get("/watches").json() == []

        made = c.post("/watches", json={**body, "filters": {"source": "https://"}}, headers=AUTH)
        assert made.status_code == 201, made.text
        w = made.json()
        assert w["secret"].startswith("whsec_") and w["filters"]["source"] == "https://"
        listed = c.get("/watches").json()
        assert [x["id"] for x in listed] == [w["id"]] and "secret" not in listed[0]
        assert c.get(f"/watches/{w['id']}").json()["question"] == QUESTION
        assert c.get(f"/watches/{w['id']}/events").json() == []
        for path in ("/watches/w_nope", "/watches/w_nope/events"):
            r = c.get(path)
            assert r.status_code == 404 and r.json() == {"error": "no watch with id 'w_nope'"}
        assert c.delete(f"/watches/{w['id']}").status_code == 401
        assert c.delete(f"/watches/{w['id']}", headers=AUTH).json() == {"id": w["id"], "deleted": True}
        assert c.delete(f"/watches/{w['id']}", headers=AUTH).status_code == 404
        assert c.get(f"/watches/{w['id']}").status_code == 404


def test_an_article_posted_to_a_live_server_reaches_the_webhook_signed(make_service, receiver):
    service = make_service(fetch_allow_private=True, watch_retry_s=0.2)
    service.seed_if_needed()
    with LiveServer(create_app(service, background_work=False)) as base:
        w = httpx.post(f"{base}/watches", json={"question": QUESTION, "url": receiver.url}, timeout=30).json()
        receiver.secret = w["secret"]
        assert httpx.post(f"{base}/documents", json=ARTICLE, timeout=60).status_code == 200
        [got] = receiver.wait_for(1)
        assert got.error is None and got.payload["data"]["documents"] == ["nato-demand"]
        deadline = time.monotonic() + 5
        while (events := httpx.get(f"{base}/watches/{w['id']}/events").json())[0]["status"] != "delivered":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        [event] = events
        assert event["id"] == got.id and event["type"] == "watch.answer" and event["attempts"] == 1
        assert event["payload"] == got.payload
        assert httpx.get(f"{base}/watches/{w['id']}").json()["notified"] == 1


def _next_event(lines) -> dict:
    """The next `id`/`event`/`data` block of a server-sent event stream."""
    block: dict = {}
    for line in lines:
        if not line:
            if "data" in block:
                return block
            block = {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(": ")
        block[name] = value
    raise AssertionError("the stream ended")


def test_the_stream_replays_then_follows_and_resumes_after_the_last_event_id(make_service, receiver):
    service = make_service(fetch_allow_private=True, watch_retry_s=0.2)
    service.seed_if_needed()
    with LiveServer(create_app(service, background_work=False)) as base:
        w = httpx.post(f"{base}/watches", json={"question": QUESTION, "url": receiver.url}, timeout=30).json()
        r = httpx.get(f"{base}/watches/w_nope/stream")
        assert r.status_code == 404 and r.json() == {"error": "no watch with id 'w_nope'"}
        with httpx.stream("GET", f"{base}/watches/{w['id']}/stream", timeout=30) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert httpx.post(f"{base}/documents", json=ARTICLE, timeout=60).status_code == 200
            first = _next_event(stream.iter_lines())
        assert first["event"] == "watch.answer"
        assert json.loads(first["data"])["data"]["documents"] == ["nato-demand"]
        [event] = httpx.get(f"{base}/watches/{w['id']}/events").json()
        assert first["id"] == event["id"] and json.loads(first["data"]) == event["payload"]

        later = {**ARTICLE, "id": "nato-demand-2", "text": "On Monday Russia went further and demanded that NATO "
                 "withdraw its forces from Romania and Bulgaria, a spokesman said."}
        assert httpx.post(f"{base}/documents", json=later, timeout=60).status_code == 200
        with httpx.stream("GET", f"{base}/watches/{w['id']}/stream", headers={"Last-Event-ID": first["id"]},
                          timeout=30) as stream:
            resumed = _next_event(stream.iter_lines())
        assert resumed["id"] != first["id"] and json.loads(resumed["data"])["data"]["documents"] == ["nato-demand-2"]
        with httpx.stream("GET", f"{base}/watches/{w['id']}/stream", timeout=30) as stream:
            replayed = _next_event(stream.iter_lines())
        assert replayed["id"] == first["id"]  # without Last-Event-ID: from the first event
