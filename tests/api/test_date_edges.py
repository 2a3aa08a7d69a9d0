"""Dates at the ends of the calendar in every date field of `/query` and in `rag ask`: a normal
answer or a 422 sentence, never a 500 (the day after 9999-12-31, or the UTC instant of
0001-01-01T00:00+05:00, is outside what Python's dates hold)."""

from __future__ import annotations

import pytest

EDGES = [
    "9999-12-31", "0001-01-01", "9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999+00:00",
    "9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00Z", "0001-01-01T00:00:00+05:00", "0001-01-01T04:59:59+05:00",
    "10000-01-01", "0000-12-31", "9999-12-32", "Fri, 31 Dec 9999 23:59:59 GMT", "Dec 31, 9999",
]


@pytest.mark.parametrize("field", ["as_of", "published_after", "published_before"])
@pytest.mark.parametrize("value", EDGES)
def test_calendar_edges_answer_or_refuse(client, field, value):
    r = client.post("/query", json={"question": "What does Russia demand on NATO?", "k": 2, field: value})
    assert r.status_code in (200, 422), (r.status_code, r.text)
    body = r.json()
    if r.status_code == 422:
        assert body["error"].startswith(field), body
    else:
        assert "passages" in body


def test_the_last_day_admits_everything_and_the_first_nothing_dated(client):
    last = client.post("/query", json={"question": "What does Russia demand on NATO?", "as_of": "9999-12-31"}).json()
    assert last["passages"], "every article is published before the end of the calendar"
    first = client.post("/query", json={"question": "What does Russia demand on NATO?", "as_of": "0001-01-01",
                                        "include_undated": False}).json()
    assert first["passages"] == []


@pytest.mark.parametrize("field", ["as_of", "published_after", "published_before"])
def test_calendar_edges_in_the_stream(client, field):
    r = client.post("/query/stream", json={"question": "NATO", "k": 1, field: "9999-12-31"})
    assert r.status_code == 200, r.text
    r = client.post("/query/stream", json={"question": "NATO", "k": 1, field: "0001-01-01T00:00:00+05:00"})
    if field == "as_of":  # its UTC instant falls before year 1; a date field reads the day as written
        assert r.status_code == 422 and "outside the years 1 to 9999" in r.json()["error"]
    else:
        assert r.status_code == 200, r.text
