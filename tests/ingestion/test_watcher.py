"""The feed watcher (rag/ingestion/watcher.py) across polls, against real feeds and pages on a
loopback server, ingesting into a real index."""

from __future__ import annotations

import threading
import time

import pytest

from newsserver import BUDGET, FESTIVAL, STORM, Route, atom, news_page, rss

EVERY = 60.0


@pytest.fixture()
def service(make_service):
    return make_service(fetch_allow_private=True, fetch_timeout_s=0.5)


def storm_page(site, extra=()):
    return news_page("Storm floods the northern coast", STORM + list(extra), published="2022-09-06T14:30:00+02:00",
                     author="Jane Reporter", canonical=site.url("/2022/09/06/storm.html")).encode()


def publish(site, items):
    site.routes["/feed.xml"] = Route(rss(items), content_type="application/rss+xml; charset=utf-8")


def item(site, path, title, date, summary=None):
    return {"title": title, "link": site.url(path), "date": date, "summary": summary}


def stored(service, doc_id):
    row, text = service.index.store.document(doc_id)
    return row, text


def test_new_entries_once_unchanged_skipped_by_304_changed_ones_replaced(site, service):
    site.routes["/2022/09/06/storm.html"] = Route(storm_page(site))
    site.routes["/budget.html"] = Route(news_page(None, BUDGET).encode())  # states neither title nor date
    storm = item(site, "/2022/09/06/storm.html", "Storm floods coast", "Mon, 05 Sep 2022 12:30:00 GMT")
    budget = item(site, "/budget.html", "Budget raises hospital spending", "Wed, 07 Sep 2022 09:00:00 GMT")
    publish(site, [storm, budget])
    events: list[str] = []
    watcher = service.watch([site.url("/feed.xml")], every_s=EVERY, on_event=events.append)

    first = watcher.poll(site.url("/feed.xml"))
    assert (first.outcome, first.added, first.replaced, first.failed) == ("changed", 2, 0, [])
    assert "2 new, 0 replaced" in events[-1] and "next poll in 1 min" in events[-1]
    docs = {d.title: d for d in service.documents()}
    assert docs["Storm floods the northern coast"].published == "2022-09-06"  # the page's own date and title
    assert docs["Storm floods the northern coast"].source == site.url("/2022/09/06/storm.html")
    assert docs["Storm floods the northern coast"].author == "Jane Reporter"
    assert docs["Budget raises hospital spending"].published == "2022-09-07T09:00:00Z"  # the feed's, as the page has none
    for d in docs.values():  # the stored text is the extracted text, and every chunk cites it exactly
        _, text = stored(service, d.id)
        chunks = service.index.store.chunks_by_vid(service.index.store.chunk_vids(d.id)).values()
        assert chunks and all(text[c.start : c.end] == c.text for c in chunks)
        assert "Refinance today" not in text and "grumpy_reader" not in text

    pages_before = len(site.hits)
    second = watcher.poll(site.url("/feed.xml"))
    assert second.outcome == "not modified" and len(site.hits) == pages_before + 1  # the feed only, answered 304
    assert site.hits[-1].headers.get("if-none-match")

    site.routes["/2022/09/06/storm.html"] = Route(storm_page(site, ["Power was restored to most homes by Friday."]))
    site.routes["/festival.html"] = Route(news_page("Film festival's record programme", FESTIVAL).encode())
    storm["date"] = "Fri, 09 Sep 2022 08:00:00 GMT"
    publish(site, [item(site, "/festival.html", "Festival", "Thu, 08 Sep 2022 10:00:00 GMT"), storm, budget])
    third = watcher.poll(site.url("/feed.xml"))
    assert (third.added, third.replaced, third.skipped) == (1, 1, 1)
    assert site.requests_to("/budget.html").__len__() == 1  # stated as before: never fetched again
    storm_id = docs["Storm floods the northern coast"].id
    assert "Power was restored" in stored(service, storm_id)[1]
    assert len(service.documents()) == 3

    budget["summary"] = "Now with the opposition's reaction."  # the entry changed, its page did not
    publish(site, [storm, budget])
    fourth = watcher.poll(site.url("/feed.xml"))
    assert (fourth.added, fourth.replaced, fourth.unchanged, fourth.skipped) == (0, 0, 1, 1)
    assert site.requests_to("/budget.html")[-1].headers.get("if-none-match")  # asked conditionally: 304
    assert set(watcher.states[site.url("/feed.xml")].pages) == {storm["link"], budget["link"]}  # festival: no longer listed

    # A restart resumes from the state stored in the index: the same validators, so 304 at once.
    again = service.watch([site.url("/feed.xml")], every_s=EVERY).poll(site.url("/feed.xml"))
    assert again.outcome == "not modified"
    assert len(service.documents()) == 3


def test_a_feed_going_down_and_coming_back_never_stops_the_others(site, service):
    site.routes["/storm.html"] = Route(storm_page(site))
    site.routes["/budget.html"] = Route(news_page("Budget", BUDGET).encode())
    site.routes["/festival.html"] = Route(news_page("Festival", FESTIVAL).encode())
    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT")])
    site.routes["/wire.xml"] = Route(atom([{"title": "Budget", "link": site.url("/budget.html"),
                                            "updated": "2022-09-07T09:00:00Z"}]), content_type="application/atom+xml")
    feeds = [site.url("/feed.xml"), site.url("/wire.xml")]
    watcher = service.watch(feeds, every_s=EVERY)
    assert [s.added for s in watcher.poll_once()] == [1, 1]

    site.routes["/feed.xml"] = Route(b"<h1>Service Unavailable</h1>", status=503, validators=False)
    site.routes["/wire.xml"] = Route(atom([
        {"title": "Festival", "link": site.url("/festival.html"), "updated": "2022-09-08T10:00:00Z"},
        {"title": "Budget", "link": site.url("/budget.html"), "updated": "2022-09-07T09:00:00Z"},
    ]), content_type="application/atom+xml")
    down, wire = watcher.poll_once()
    assert down.outcome == "error" and "HTTP 503" in down.error and down.next_in_s == 2 * EVERY  # backs off
    assert wire.outcome == "changed" and wire.added == 1
    state = watcher.states[feeds[0]]
    assert state.failures == 1 and "503" in state.error and state.last_success is not None  # the earlier poll's

    site.routes["/feed.xml"] = Route(b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>cut',
                                     content_type="application/rss+xml")
    malformed = watcher.poll(feeds[0])
    assert malformed.outcome == "error" and "malformed XML" in malformed.error and malformed.next_in_s == 4 * EVERY
    site.routes["/feed.xml"] = Route(rss([]), content_type="application/rss+xml", delay=1.0)  # past the timeout
    slow = watcher.poll(feeds[0])
    assert slow.outcome == "error" and "timed out" in slow.error and slow.next_in_s == 8 * EVERY
    assert watcher.poll_once(due_only=True) == []  # neither feed is due yet

    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT"),
                   item(site, "/festival.html", "Festival", "Thu, 08 Sep 2022 10:00:00 GMT")])
    back = watcher.poll(feeds[0])
    assert back.outcome == "changed" and back.skipped == 1 and back.unchanged == 1  # festival: as ingested from the wire
    assert watcher.states[feeds[0]].failures == 0 and watcher.states[feeds[0]].error is None
    health = service.health()
    assert [f.url for f in health.feeds] == feeds and all(f.last_success for f in health.feeds)
    assert len(service.documents()) == 3


def test_a_page_that_times_out_is_retried_next_poll_while_the_others_go_in(site, service):
    site.routes["/storm.html"] = Route(storm_page(site), delay=1.0)  # past the 0.5 s timeout
    site.routes["/budget.html"] = Route(news_page("Budget", BUDGET).encode())
    site.routes["/garbled.html"] = Route(news_page("Garbled", FESTIVAL).encode().replace(b"Organisers", b"Organ\xff\xfeisers"))
    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT"),
                   item(site, "/budget.html", "Budget", "Wed, 07 Sep 2022 09:00:00 GMT"),
                   item(site, "/garbled.html", "Garbled", "Wed, 07 Sep 2022 10:00:00 GMT")])
    watcher = service.watch([site.url("/feed.xml")], every_s=EVERY)
    first = watcher.poll(site.url("/feed.xml"))
    assert first.outcome == "changed" and first.added == 1 and len(first.failed) == 2
    assert "timed out" in first.failed[0] and "garbled.html is not valid utf-8" in first.failed[1]
    assert "timed out" in watcher.states[site.url("/feed.xml")].error
    assert watcher.states[site.url("/feed.xml")].etag is None  # so the feed is read in full next time

    site.routes["/storm.html"] = Route(storm_page(site))
    second = watcher.poll(site.url("/feed.xml"))
    # The garbled page is not fetched again until the feed changes its entry; the timed-out one is.
    assert (second.outcome, second.added, second.skipped, second.failed) == ("changed", 1, 2, [])
    assert len(site.requests_to("/garbled.html")) == 1 and len(site.requests_to("/storm.html")) == 2
    assert watcher.states[site.url("/feed.xml")].error is None and len(service.documents()) == 2
    assert watcher.states[site.url("/feed.xml")].etag is not None
    assert service.watcher is watcher and service.health().feeds[0].articles == 2


def test_health_shows_the_last_finished_poll_never_one_in_progress(site, service):
    site.routes["/storm.html"] = Route(storm_page(site))
    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT")])
    site.routes["/broken.xml"] = Route(b"oops", status=500, validators=False, delay=0.3)
    watcher = service.watch([site.url("/feed.xml"), site.url("/broken.xml")], every_s=EVERY)
    polling = threading.Thread(target=watcher.poll_once)
    polling.start()
    deadline = time.monotonic() + 20
    while not site.requests_to("/broken.xml") and time.monotonic() < deadline:
        time.sleep(0.01)
    ok, broken = service.health().feeds  # the broken feed's answer is still on its way
    polling.join(20)
    assert ok.last_poll and ok.error is None and ok.articles == 1
    assert broken.last_poll is None and broken.error is None and broken.failures == 0
    broken = service.health().feeds[1]
    assert broken.last_poll and broken.last_success is None and "HTTP 500" in broken.error


def test_a_wire_copy_on_another_site_folds_into_the_first_story(site, service):
    site.routes["/storm.html"] = Route(storm_page(site))
    copy = news_page("Storm floods northern coast (wire)", STORM, published="2022-09-06T15:00:00Z",
                     canonical=site.url("/other-site/storm-copy.html")).encode()
    site.routes["/other-site/storm-copy.html"] = Route(copy)
    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT")])
    site.routes["/wire.xml"] = Route(atom([{"title": "Storm", "link": site.url("/other-site/storm-copy.html"),
                                            "updated": "2022-09-06T15:00:00Z"}]), content_type="application/atom+xml")
    watcher = service.watch([site.url("/feed.xml"), site.url("/wire.xml")], every_s=EVERY)
    assert [s.added for s in watcher.poll_once()] == [1, 1]
    rows = {r.source: r for r in service.index.store.documents()}
    first, wire = rows[site.url("/2022/09/06/storm.html")], rows[site.url("/other-site/storm-copy.html")]
    assert wire.dup_of == first.id


def test_the_background_thread_polls_and_stops_cleanly(site, make_service):
    site.routes["/storm.html"] = Route(storm_page(site))
    publish(site, [item(site, "/storm.html", "Storm", "Tue, 06 Sep 2022 12:30:00 GMT")])
    service = make_service(fetch_allow_private=True, fetch_timeout_s=0.5, feeds=site.url("/feed.xml"), feed_every="1s")
    watcher = service.start_watching()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(site.requests_to("/feed.xml")) < 2:
        time.sleep(0.05)
    assert len(site.requests_to("/feed.xml")) >= 2 and len(service.documents()) == 1
    assert watcher.running
    service.stop_watching(timeout=5)
    assert not watcher.running and service.health().feeds is None
