"""`POST /timeline` over a live uvicorn server: the story's events as the JSON contract, the
articles uploaded through `POST /documents` first; bad input as 422 sentences; reads guarded
like /query."""

from __future__ import annotations

import httpx
import pytest

from api.app import create_app
from rag.schema import TimelineResponse
from stories import EVENTS, QUESTION, write_jsonl
from support import LiveServer

KEY = "timeline-key-0123456789abcdef"


@pytest.fixture(scope="module")
def story_server(tmp_path_factory, embedder):
    """A server over its own index; the story arrives as an upload, as a user would send it."""
    from rag.config import Settings
    from rag.service import Service

    folder = tmp_path_factory.mktemp("timeline-api")
    service = Service(Settings(index_dir=folder / "index", seeds_dir=folder / "no-seeds"), embedder=embedder)
    upload = write_jsonl(folder / "story.jsonl")
    try:
        with LiveServer(create_app(service)) as url:
            r = httpx.post(f"{url}/documents", files={"file": ("story.jsonl", upload.read_bytes())}, timeout=120)
            assert r.status_code == 200, r.text
            yield url
    finally:
        service.close()


def test_the_timeline_over_http(story_server):
    r = httpx.post(f"{story_server}/timeline", json={"question": QUESTION, "as_of": "2025-06-01"}, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert set(body) == {"question", "answerable", "events", "undated"}
    assert set(body["events"][0]) == {"date", "sentence", "articles"}
    assert set(body["events"][0]["sentence"]) == {"doc_id", "start", "end", "text", "title", "source", "published"}
    timeline = TimelineResponse.model_validate(body)
    assert [(e.date, {a.doc_id for a in e.articles}) for e in timeline.events] == EVENTS
    assert [e.date.isoformat() for e in timeline.events] == sorted(e["date"] for e in body["events"])
    assert timeline.events[0].articles[0].also_in == ["council-approves-wire"]
    assert [a.doc_id for a in timeline.undated] == ["tram-explainer"]
    for e in timeline.events:  # each key sentence sits at its offsets in the article the API serves
        doc = httpx.get(f"{story_server}/documents/{e.sentence.doc_id}", timeout=30).json()
        assert doc["text"][e.sentence.start : e.sentence.end] == e.sentence.text


def test_as_of_and_filters_over_http(story_server):
    body = {"question": QUESTION, "as_of": "2025/03/12", "include_undated": False}
    r = httpx.post(f"{story_server}/timeline", json=body, timeout=60).json()
    assert [e["date"] for e in r["events"]] == ["2025-03-03", "2025-03-04", "2025-03-12"] and r["undated"] == []
    r = httpx.post(f"{story_server}/timeline", json={"question": "Who won the Paris marathon?"}, timeout=60).json()
    assert r == {"question": "Who won the Paris marathon?", "answerable": False, "events": [], "undated": []}


@pytest.mark.parametrize("body,says", [
    ({"question": " "}, "question must not be blank"),
    ({"question": QUESTION, "k": 51}, "k: Input should be less than or equal to 50"),
    ({"question": QUESTION, "as_of": "soon"}, "unreadable date 'soon'"),
    ({"question": QUESTION, "as_of": "0001-01-01T00:00:00+05:00"}, "outside the years 1 to 9999"),
    ({"question": QUESTION, "published_after": "2025-03-02", "published_before": "2025-03-01"},
     "published_after is later than published_before"),
    ({"question": QUESTION, "choices": ["a", "b"]}, "choices: Extra inputs are not permitted"),
    ({"question": QUESTION, "mode": "psychic"}, "mode: Input should be"),
    ({}, "question: Field required"),
])
def test_bad_input_is_a_422_sentence(story_server, body, says):
    r = httpx.post(f"{story_server}/timeline", json=body, timeout=30)
    assert r.status_code == 422 and says in r.json()["error"], r.text
    assert "Traceback" not in r.text


def test_a_body_that_is_not_json_is_a_400(story_server):
    r = httpx.post(f"{story_server}/timeline", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]


def test_reads_need_a_key_when_protected(make_service):
    service = make_service(api_keys=KEY, protect_reads=True)
    with LiveServer(create_app(service)) as url:
        r = httpx.post(f"{url}/timeline", json={"question": QUESTION}, timeout=60)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and r.json()["error"]
        r = httpx.post(f"{url}/timeline", json={"question": QUESTION}, headers={"Authorization": f"Bearer {KEY}"},
                       timeout=60)
        assert r.status_code == 200 and TimelineResponse.model_validate_json(r.content)
