"""Standing questions (rag/watches) end to end: a real index, the loopback news site whose feed
gains articles between polls, and a real webhook receiver that verifies every signature with the
`standardwebhooks` library."""

from __future__ import annotations

import threading
import time

import pytest

from newsserver import FESTIVAL, STORM, Route, news_page, rss
from rag.config import Settings
from rag.ingestion import Document
from rag.service import Service
from rag.watches import WatchError, WatchIn
from rag.watches.deliver import backoff

QUESTION = "What does Russia demand on NATO?"
NATO = [
    "Russia's foreign ministry said on Friday that Moscow demands written guarantees that NATO will never admit "
    "Ukraine or Georgia as members.",
    "The demand was handed to American diplomats in Geneva, a deputy minister told reporters.",
    "Western officials called the demand a non-starter and said NATO's door stays open.",
]
# The same wire story as another outlet republishes it: a new headline and one sentence added.
NATO_COPY = NATO + ["This story was first published by a news agency."]
BAKING = Document(
    "baking", "The annual village baking contest was won by a lemon drizzle cake made by a retired teacher. "
    "Judges praised its moist crumb and the crisp sugar topping.", "Baking contest", "test", "2025-03-21",
)
RELEVANT = Document("nato-demand", " ".join(NATO), "Russia restates its NATO demand", "test", "2025-03-20")


def watch(service, receiver, **extra):
    made = service.watches.add(WatchIn(question=QUESTION, url=receiver.url, **extra))
    receiver.secret = made.secret
    return made


def first_event_settled(service, watch_id: str, timeout_s: float = 5.0):
    """The watch's first event once its delivery thread has recorded the outcome: the receiver
    sees a delivery before the sender has written down the reply, so read the event after that."""
    deadline = time.monotonic() + timeout_s
    while (event := service.watches.events(watch_id)[0]).status == "pending" and time.monotonic() < deadline:
        time.sleep(0.05)
    return event


def settle(service, seconds: float = 0.6) -> None:
    """Time for a delivery thread to send what it would (used where nothing should arrive)."""
    time.sleep(seconds)


def test_a_feed_that_gains_a_relevant_article_notifies_once_signed_and_copies_or_noise_send_nothing(
    site, receiver, watched
):
    made = watch(watched, receiver)
    feed = site.url("/feed.xml")

    def publish(*paths: str) -> None:
        items = [{"title": p, "link": site.url(p), "date": "Fri, 21 Mar 2025 09:00:00 GMT"} for p in paths]
        site.routes["/feed.xml"] = Route(rss(items), content_type="application/rss+xml; charset=utf-8")

    site.routes["/storm.html"] = Route(news_page("Storm floods the northern coast", STORM).encode())
    site.routes["/nato.html"] = Route(news_page("Russia restates its NATO demand", NATO).encode())
    site.routes["/copy/nato.html"] = Route(news_page("Moscow's NATO ultimatum, again", NATO_COPY).encode())
    site.routes["/festival.html"] = Route(news_page("Film festival's record programme", FESTIVAL).encode())
    watcher = watched.watch([feed], every_s=60)

    publish("/storm.html")
    assert watcher.poll(feed).added == 1
    settle(watched)
    assert receiver.deliveries == [] and watched.watches.events(made.id) == []  # irrelevant: nothing

    publish("/nato.html", "/storm.html")
    assert watcher.poll(feed).added == 1
    [got] = receiver.wait_for(1)
    assert got.error is None and got.payload is not None  # the library verified the signature
    assert got.payload["type"] == "watch.answer"
    data = got.payload["data"]
    nato_id = data["documents"][0]
    text = watched.document(nato_id).text
    assert data["question"] == QUESTION and data["watch_id"] == made.id
    assert data["passages"] and all(p["doc_id"] == nato_id for p in data["passages"])
    assert all(text[p["start"] : p["end"]] == p["text"] for p in data["passages"])
    assert data["answer"]["verified"] and "written guarantees" in data["answer"]["text"]
    # It updates what the archive (the seeds) answered when the watch was made.
    assert data["updates"]["event_id"] is None and data["updates"]["passages"]
    assert all(p["doc_id"] != nato_id for p in data["updates"]["passages"])
    assert len(watched.watches.events(made.id)) == 1
    event = first_event_settled(watched, made.id)
    assert event.id == got.id == got.headers["webhook-id"] and event.status == "delivered" and event.attempts == 1

    publish("/copy/nato.html", "/festival.html", "/nato.html", "/storm.html")
    assert watcher.poll(feed).added == 2  # the republished copy and the festival went in
    copy_row = next(r for r in watched.index.store.documents() if r.source == site.url("/copy/nato.html"))
    assert copy_row.dup_of == nato_id  # folded as a near-duplicate
    settle(watched)
    assert len(receiver.deliveries) == 1 and len(watched.watches.events(made.id)) == 1
    assert watched.watches.get(made.id).notified == 1


def test_the_next_notification_updates_the_last_one(receiver, watched):
    made = watch(watched, receiver)
    watched.ingest([RELEVANT])
    first = receiver.wait_for(1)[0].payload
    later = Document(
        "nato-demand-2", "On Monday Russia went further and demanded that NATO withdraw its forces from Romania "
        "and Bulgaria, a spokesman said.", "Kremlin widens its NATO demands", "test", "2025-03-24",
    )
    watched.ingest([later])
    second = receiver.wait_for(2)[1].payload["data"]
    assert second["documents"] == ["nato-demand-2"]
    assert second["updates"]["event_id"] == watched.watches.events(made.id)[0].id
    assert second["updates"]["answer"] == first["data"]["answer"]


def test_an_irrelevant_article_sends_nothing(receiver, watched):
    made = watch(watched, receiver)
    report = watched.ingest([BAKING])
    assert report.added == ["baking"]
    settle(watched)
    assert receiver.deliveries == [] and watched.watches.events(made.id) == []


def test_a_stricter_relevance_bar_keeps_a_relevant_article_quiet(receiver, watched):
    made = watch(watched, receiver, min_relevance=0.99)
    watched.ingest([RELEVANT])
    settle(watched)
    assert receiver.deliveries == [] and watched.watches.events(made.id) == []


def test_a_receiver_answering_500_gets_the_same_delivery_again_later(receiver, watched):
    made = watch(watched, receiver)
    receiver.statuses = [500, 500]
    watched.ingest([RELEVANT])
    got = receiver.wait_for(3)
    assert [d.answered for d in got] == [500, 500, 200]
    assert len({d.id for d in got}) == 1 and len({d.body for d in got}) == 1  # one id, one body, re-signed
    assert all(d.error is None for d in got)
    event = first_event_settled(watched, made.id)
    assert (event.status, event.attempts, event.last_status) == ("delivered", 3, 200)


def test_a_restart_in_the_middle_of_a_delivery_loses_nothing(receiver, watched, embedder):
    made = watch(watched, receiver)
    release = threading.Event()
    receiver.hold = release  # the first attempt hangs; the server goes away meanwhile
    watched.ingest([RELEVANT])
    assert receiver.held.wait(20)
    folder = watched.settings.index_dir
    watched.close()
    restarted = Service(Settings(index_dir=folder, fetch_allow_private=True, watch_retry_s=0.2), embedder=embedder)
    try:
        got = receiver.wait_for(2)  # sent again by the restarted service
        release.set()
        assert got[0].answered is None and got[1].answered == 200
        assert got[0].id == got[1].id and got[1].error is None
        event = first_event_settled(restarted, made.id)
        assert event.status == "delivered" and event.id == got[1].id
    finally:
        release.set()
        restarted.close()


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://127.0.0.1:9/hook", "loopback, private or reserved"),
        ("http://10.1.2.3/hook", "loopback, private or reserved"),
        ("ftp://example.org/hook", "only http and https"),
        ("http:///hook", "has no host"),
        ("http://no-such-host.invalid/hook", "cannot resolve"),
    ],
)
def test_webhook_urls_pass_the_fetch_guard(make_service, url, says):
    service = make_service()
    with pytest.raises(WatchError, match=says):
        service.watches.add(WatchIn(question=QUESTION, url=url))
    assert service.watches.list() == []


def test_a_host_allowed_by_name_may_be_private(make_service, receiver):
    service = make_service(fetch_allow_hosts="127.0.0.1")
    assert service.watches.add(WatchIn(question=QUESTION, url=receiver.url)).url == receiver.url


def test_waits_double_up_to_an_hour():
    assert [backoff(n, 30) for n in (1, 2, 3)] == [30, 60, 120]
    assert backoff(20, 30) == 3600
