"""The page's timeline view, driven in headless Chromium against a live uvicorn server over the
handmade story (tests/stories.py): the Timeline button posts to /timeline and the page shows each
event oldest first with its date, its key sentence in context and its citation. Skips without
Debian's Chromium, as tests/api/test_web.py does (and fails instead under make test and CI)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from browser import needs_chromium
from stories import COPY, QUESTION, STORY
from support import LiveServer

TIMEOUT_MS = 60_000
AS_OF = "2025-06-01"


@pytest.fixture(scope="module")
def story_url(tmp_path_factory, embedder) -> Iterator[str]:
    from api.app import create_app
    from rag.config import Settings
    from rag.service import Service

    folder = tmp_path_factory.mktemp("web-timeline")
    service = Service(Settings(index_dir=folder / "index", seeds_dir=folder / "no-seeds"), embedder=embedder)
    try:
        service.ingest(STORY + [COPY])
        with LiveServer(create_app(service)) as url:
            yield url
    finally:
        service.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.page_errors = []
    p.on("pageerror", lambda e: p.page_errors.append(str(e)))
    yield p
    context.close()


def idle(page) -> None:
    page.wait_for_function("() => !document.getElementById('submit').disabled"
                           " && !document.getElementById('timeline-submit').disabled")


def ask_timeline(page, question: str, as_of: str | None = AS_OF) -> dict:
    """Type the question, pick the day, press Timeline; the API's JSON reply, once rendered."""
    page.fill("#question", question)
    if as_of:
        page.fill("#as-of", as_of)
    with page.expect_response(lambda r: r.url.endswith("/timeline")) as reply:
        page.click("#timeline-submit")
    idle(page)
    return reply.value.json()


def expect_events(page, data: dict) -> None:
    """Each event as the API sent it: date, key sentence in its article's context, citation, articles."""
    events = page.locator("#event-list > li.event")
    assert events.count() == len(data["events"]) > 0
    for i, e in enumerate(data["events"]):
        item = events.nth(i)
        s = e["sentence"]
        assert item.locator("time.event-date").text_content() == e["date"]
        assert item.locator("time.event-date").get_attribute("datetime") == e["date"]
        assert item.locator(".title").first.text_content() == (e["articles"][0]["title"] or e["articles"][0]["doc_id"])
        page.wait_for_selector(f"#event-{i + 1} blockquote .before", state="attached")  # the article's text arrived
        assert item.locator("mark").text_content() == s["text"]
        offsets = item.locator(".offsets").text_content()
        assert offsets == f"{s['doc_id']}, characters {s['start']}\u2013{s['end']}"
        link = item.locator("a.source-link")
        assert link.get_attribute("href") == s["source"] and link.text_content() == s["title"]
        assert item.locator(".event-articles > li").count() == len(e["articles"])
        for j, a in enumerate(e["articles"]):
            line = item.locator(".event-articles > li").nth(j).text_content()
            assert (a["title"] or a["doc_id"]) in line and a["published"][:10] in line
            assert all(c in line for c in a["also_in"])


@needs_chromium
def test_the_timeline_button_shows_the_events_oldest_first(page, story_url):
    page.goto(story_url + "/")
    data = ask_timeline(page, QUESTION)
    assert data["answerable"] and [e["date"] for e in data["events"]] == sorted(e["date"] for e in data["events"])
    expect_events(page, data)
    assert page.locator("#timeline").is_visible() and page.locator("#passages").is_hidden()
    assert page.locator("#answer").is_hidden()
    first, last = data["events"][0]["date"], data["events"][-1]["date"]
    assert page.locator("#timeline-heading").text_content() == f"Timeline, {first} to {last}"
    articles = sum(len(e["articles"]) for e in data["events"])
    assert page.locator("#status").text_content() == (
        f"Timeline of {len(data['events'])} events from {articles} articles, oldest first.")
    assert "also in council-approves-wire" in page.locator("#event-1 .event-articles").text_content()

    # Undated articles are shown apart, never on the line.
    assert page.locator("#undated").is_visible()
    assert page.locator("#undated-list > li").count() == len(data["undated"]) == 1
    assert page.locator("#undated-list").text_content().startswith("Tram line explained")

    # The link can be shared: it opens on the same timeline.
    assert "view=timeline" in page.url and "as_of=2025-06-01" in page.url
    with page.expect_response(lambda r: r.url.endswith("/timeline")) as reply:
        page.goto(page.url)
    idle(page)
    assert reply.value.json() == data
    expect_events(page, data)
    assert page.page_errors == []


@needs_chromium
def test_enter_still_asks_and_replaces_the_timeline(page, story_url):
    page.goto(story_url + "/")
    ask_timeline(page, QUESTION)
    with page.expect_response(lambda r: r.url.endswith("/query")) as reply:
        page.press("#question", "Enter")
    idle(page)
    assert reply.value.status == 200
    assert page.locator("#timeline").is_hidden() and page.locator("#undated").is_hidden()
    assert page.locator("#passage-list > li").count() >= 1
    assert "view=timeline" not in page.url


@needs_chromium
def test_waiting_disables_both_buttons_and_names_the_one_pressed(page, story_url):
    held = []
    page.route("**/timeline", lambda route: held.append(route))
    page.goto(story_url + "/")
    page.fill("#question", QUESTION)
    page.click("#timeline-submit")
    page.wait_for_function("() => document.getElementById('timeline-submit').disabled")
    assert page.locator("#submit").is_disabled()
    assert page.locator("#timeline-submit").text_content() == "Searching…"
    assert page.locator("#submit").text_content() == "Ask"
    while not held:
        page.wait_for_timeout(20)
    held[0].continue_()
    idle(page)
    assert page.locator("#timeline-submit").text_content() == "Timeline"


@needs_chromium
def test_a_story_the_articles_do_not_tell_says_so(page, story_url):
    page.goto(story_url + "/")
    data = ask_timeline(page, "Who won the Paris marathon?")
    assert data["answerable"] is False
    assert page.locator("#status").text_content() == "The articles don't cover this question."
    assert page.locator("#timeline").is_hidden() and page.locator("#undated").is_hidden()
    # Before the story began, only the undated explainer is relevant: no line to draw.
    data = ask_timeline(page, QUESTION, "2025-03-01")
    assert data["events"] == [] and data["undated"]
    assert "no timeline to draw" in page.locator("#status").text_content()
    assert page.locator("#timeline").is_hidden() and page.locator("#undated").is_visible()


@needs_chromium
def test_a_refused_value_shows_the_servers_sentence(page, story_url):
    page.goto(story_url + "/")
    page.evaluate("document.getElementById('mode').add(new Option('psychic', 'psychic'))")
    page.select_option("#mode", "psychic")
    page.fill("#question", QUESTION)
    with page.expect_response(lambda r: r.url.endswith("/timeline")) as reply:
        page.click("#timeline-submit")
    assert reply.value.status == 422
    idle(page)
    status = page.locator("#status").text_content()
    assert reply.value.json()["error"] in status and "422" in status
    assert page.locator("#timeline").is_hidden()


@needs_chromium
def test_the_timeline_reads_on_a_phone_width_screen(browser, story_url):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(story_url + "/")
        ask_timeline(page, QUESTION)
        page.wait_for_selector("#event-1 blockquote .before", state="attached")
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        for button in ("#submit", "#timeline-submit"):
            box = page.locator(button).bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    finally:
        context.close()


HOSTILE = "<script>window.__pwned=1</script> The Lakeview tram line <img src=x onerror=window.__pwned=2> was approved."


@needs_chromium
def test_article_markup_and_a_script_url_stay_text(browser, tmp_path, embedder):
    from api.app import create_app
    from rag.config import Settings
    from rag.ingestion.documents import Document
    from rag.service import Service

    service = Service(Settings(index_dir=tmp_path / "index", seeds_dir=tmp_path / "none"), embedder=embedder)
    context = browser.new_context(bypass_csp=True)  # the escaping alone is what is tested
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        service.ingest([Document("evil", HOSTILE, "<b>Tram</b> <script>window.__pwned=3</script>",
                                 "javascript:window.__pwned=4", "2025-03-03")])
        with LiveServer(create_app(service)) as url:
            page.goto(url + "/")
            data = ask_timeline(page, QUESTION)
            [event] = data["events"]
            page.wait_for_selector("#event-1 blockquote .before", state="attached")
            assert page.locator("#event-1 mark").text_content() == event["sentence"]["text"]
            assert "<script>" in page.locator("#event-1 blockquote").text_content()
            assert page.locator("#event-1 a").count() == 0  # a javascript: source is no link
            assert "javascript:window.__pwned=4" in page.locator("#event-1 .citation").text_content()
            page.locator("#event-1 .citation").click()
            page.wait_for_timeout(300)
            assert page.evaluate("typeof window.__pwned") == "undefined"
            assert page.locator("#results script, #results img, #results b").count() == 0
    finally:
        context.close()
        service.close()
