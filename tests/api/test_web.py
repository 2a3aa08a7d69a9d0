"""The web page at `/`: served by the app, and driven end to end in headless Chromium.

The browser tests run Debian's `/usr/bin/chromium` through Playwright's Python package against a
live uvicorn server on loopback (never a downloaded browser). Where that binary is absent they skip,
except under `make test` (RAG_REQUIRE_BROWSER=1) or CI (CI=true), where they fail: there a green
run must mean the whole suite ran.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from browser import needs_chromium
from support import LiveServer

NATO = "What does Russia demand on NATO?"
FAR_OFF = "What is a good recipe for chocolate cake?"
XSS_TEXT = "Ceasefire talk <script>window.__pwned=1</script> <img src=x onerror=window.__pwned=2> about NATO guarantees."
XSS_TITLE = "<b>Breaking</b> <script>window.__pwned=3</script>"
TIMEOUT_MS = 60_000  # the first question warms the model up on a small, busy machine

# --- without a browser ------------------------------------------------------------------------


def test_page_and_its_static_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for ref, kind in ((r'src="(/static/app\.js)"', "javascript"), (r'href="(/static/style\.css)"', "text/css")):
        url = re.search(ref, page.text).group(1)
        asset = client.get(url)
        assert asset.status_code == 200 and asset.text, url
        assert kind in asset.headers["content-type"], url
    script = client.get("/static/app.js").text
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", script)


@pytest.mark.parametrize("path", ["/static/nothing.js", "/static/..%2Fweb.py", "/static/%2E%2E%2F%2E%2E%2Fpyproject.toml"])
def test_unknown_static_files_are_404(client, path):
    r = client.get(path)
    assert r.status_code == 404
    assert "error" in r.json()


def test_page_is_not_in_the_api_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)


# --- a live server and a browser ----------------------------------------------------------------


@pytest.fixture(scope="module")
def live_url(seeds_service) -> Iterator[str]:
    from api.app import create_app

    with LiveServer(create_app(seeds_service)) as url:
        yield url


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    p = context.new_page()
    p.set_default_timeout(TIMEOUT_MS)
    p.page_errors = []
    p.on("pageerror", lambda e: p.page_errors.append(str(e)))
    yield p
    context.close()


def ask(page, question: str, k: int | None = None) -> dict:
    """Type the question, submit with Enter, wait for the page to render; the API's JSON reply."""
    page.fill("#question", question)
    if k is not None:
        page.select_option("#k", str(k))
    with page.expect_response(lambda r: r.url.endswith("/query")) as reply:
        page.press("#question", "Enter")
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    return reply.value.json()


def expect_context_loaded(page, rank: int) -> None:
    """The passage's article text has arrived: its span sits between context from the article."""
    page.wait_for_selector(f"#passage-{rank} blockquote .before", state="attached")


# --- the page, in the browser --------------------------------------------------------------------


@needs_chromium
def test_nato_question_shows_answer_passages_and_working_citations(page, live_url, client):
    page.goto(live_url + "/")
    assert page.evaluate("document.activeElement.id") == "question"
    data = ask(page, NATO)

    assert data["answerable"] and data["answer"]["citations"]
    assert page.locator("#answer").is_visible()
    passages = page.locator("#passage-list > li.passage")
    assert passages.count() == len(data["passages"]) >= 3
    status = page.locator("#status").text_content()
    assert "Answer drafted from" in status

    # Every [n] in the answer is a link to its passage; the rest is the answer's text as sent.
    links = page.locator("#answer-text a.cite")
    assert links.count() == len(re.findall(r"\[\d+\]", data["answer"]["text"]))
    assert page.locator("#answer-text").text_content() == data["answer"]["text"]

    # Each passage shows its title (or id), source, date and score.
    for i, p in enumerate(data["passages"]):
        item = passages.nth(i)
        assert item.locator(".title").text_content() == (p["title"] or p["doc_id"])
        meta = item.locator(".meta").text_content()
        assert f"score {p['score']:.3f}" in meta
        if p["source"]:
            assert p["source"] in meta
        if p["published"]:
            assert p["published"][:10] in meta

    by_rank = {p["rank"]: p for p in data["passages"]}
    cited = [int(n) for n in re.findall(r"\[(\d+)\]", data["answer"]["text"])]

    # Click the last citation: its passage scrolls into view, takes focus, its <mark> is the span.
    rank = cited[-1]
    expect_context_loaded(page, rank)
    links.nth(len(cited) - 1).click()
    page.wait_for_function(f"() => document.activeElement.id === 'passage-{rank}'")
    target = page.locator(f"#passage-{rank}")
    page.wait_for_function(
        f"() => {{ const r = document.getElementById('passage-{rank}').getBoundingClientRect();"
        " return r.top >= -1 && r.top < window.innerHeight / 2; }"
    )
    assert "flash" in (target.get_attribute("class") or "")
    assert target.locator("mark").count() == 1
    assert target.locator("mark").text_content() == by_rank[rank]["text"]

    # The context around it is the article's own text at the passage's offsets.
    doc = client.get(f"/documents/{by_rank[rank]['doc_id']}").json()["text"]
    quote = target.locator("blockquote").text_content().strip("… ")
    assert by_rank[rank]["text"] in quote and quote in doc
    before = target.locator(".before").text_content()
    assert doc[: by_rank[rank]["start"]].endswith(before)
    assert 0 < len(before) <= 240 or by_rank[rank]["start"] == 0

    # The keyboard alone: focus the first citation and press Enter.
    first = cited[0]
    expect_context_loaded(page, first)
    links.first.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(f"() => document.activeElement.id === 'passage-{first}'")
    assert page.locator(f"#passage-{first} mark").text_content() == by_rank[first]["text"]
    assert page.page_errors == []


@needs_chromium
def test_the_time_a_question_names_is_said_above_the_passages(page, live_url):
    page.goto(live_url + "/")
    page.fill("#as-of", "2025-05-20")
    data = ask(page, "What did Witkoff say this week?")
    w = data["time_window"]
    assert w["words"] == "this week"
    note = page.locator("#time-window")
    assert note.is_visible()
    assert f"{w['start'][:10]} to {w['end'][:10]}" in note.text_content()
    assert "this week" in note.text_content()
    data = ask(page, NATO)
    assert data["time_window"] is None and not note.is_visible()
    assert page.page_errors == []


@needs_chromium
def test_waiting_state_disables_the_button(page, live_url):
    held = []
    page.route("**/query", lambda route: held.append(route))
    page.goto(live_url + "/")
    page.fill("#question", NATO)
    page.press("#question", "Enter")
    page.wait_for_function("() => document.getElementById('submit').disabled")
    assert page.locator("#status").text_content() == "Searching…"
    assert page.locator("#status").get_attribute("aria-live") == "polite"
    while not held:
        page.wait_for_timeout(20)
    held[0].continue_()
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    assert page.locator("#passage-list > li").count() >= 3


@needs_chromium
def test_unanswerable_question_says_so_and_lists_closest_passages(page, live_url):
    page.goto(live_url + "/")
    data = ask(page, FAR_OFF)
    assert data["answerable"] is False
    assert "The articles don't cover this question" in page.locator("#status").text_content()
    assert page.locator("#status").is_visible() and page.locator("#answer").is_hidden()
    if data["passages"]:
        assert page.locator("#passages-heading").text_content() == "Closest passages"
        assert page.locator("#passage-list > li").count() == len(data["passages"])
    assert page.locator("#answer-text a").count() == 0


@needs_chromium
def test_server_error_message_is_shown(page, live_url):
    page.goto(live_url + "/")
    # A value the server refuses (k must be at most 50): its JSON `error` reaches the reader.
    page.evaluate("document.getElementById('k').add(new Option('51', '51'))")
    page.fill("#question", NATO)
    page.select_option("#k", "51")
    with page.expect_response(lambda r: r.url.endswith("/query")) as reply:
        page.click("#submit")
    assert reply.value.status == 422
    error = reply.value.json()["error"]
    page.wait_for_function("() => !document.getElementById('submit').disabled")
    status = page.locator("#status")
    assert error in status.text_content() and "422" in status.text_content()
    assert "error" in status.get_attribute("class")
    assert page.locator("#passages").is_hidden()


@needs_chromium
def test_asks_for_an_api_key_when_reads_are_protected(page, seeds_service):
    from api.app import create_app
    from api.security import Guard
    from rag.config import Settings

    key = "web-page-test-key-0123456789"
    app = create_app(seeds_service)
    app.state.guard = Guard.from_settings(Settings(api_keys=key, protect_reads=True))
    with LiveServer(app) as url:
        page.goto(url + "/")
        assert page.locator("#api-key").is_hidden()
        with page.expect_response(lambda r: r.url.endswith("/query")) as reply:
            page.fill("#question", NATO)
            page.press("#question", "Enter")
        assert reply.value.status == 401
        page.wait_for_function("() => !document.getElementById('submit').disabled")
        assert "API key" in page.locator("#status").text_content()
        assert page.evaluate("document.activeElement.id") == "api-key"

        page.fill("#api-key", key)
        with page.expect_response(lambda r: r.url.endswith("/query")) as reply:
            page.press("#api-key", "Enter")
        assert reply.value.status == 200
        expect_context_loaded(page, 1)  # the article fetch carried the key too
        assert page.locator("#passage-list > li").count() >= 3
        assert key not in page.url


@needs_chromium
def test_reads_on_a_phone_width_screen(browser, live_url):
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(live_url + "/")
        ask(page, NATO)
        expect_context_loaded(page, 1)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        box = page.locator("#submit").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 375
    finally:
        context.close()


@pytest.fixture(scope="module")
def xss_url(tmp_path_factory, embedder) -> Iterator[str]:
    """Its own server over its own index, holding one hostile article (the shared index stays as it is)."""
    from api.app import create_app
    from rag.config import Settings
    from rag.ingestion.documents import Document
    from rag.service import Service

    folder = tmp_path_factory.mktemp("xss-index")
    empty = tmp_path_factory.mktemp("xss-seeds")
    service = Service(Settings(index_dir=folder, seeds_dir=empty), embedder=embedder)
    try:
        service.ingest([Document("xss", XSS_TEXT, title=XSS_TITLE, source="<i>evil.example</i>")])
        with LiveServer(create_app(service)) as url:
            yield url
    finally:
        service.close()


@needs_chromium
@pytest.mark.parametrize("csp", ["with CSP", "CSP bypassed"])
def test_article_markup_shows_as_text_and_never_runs(browser, xss_url, csp):
    # With the page's Content-Security-Policy bypassed too, so the escaping alone is what is tested.
    context = browser.new_context(bypass_csp=csp == "CSP bypassed")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        _ask_the_hostile_article(page, xss_url)
        assert errors == []
    finally:
        context.close()


def _ask_the_hostile_article(page, xss_url: str) -> None:
    page.goto(xss_url + "/")
    data = ask(page, "What about NATO guarantees and the ceasefire talk?")
    assert [p["doc_id"] for p in data["passages"]] == ["xss"]
    expect_context_loaded(page, 1)
    page.wait_for_timeout(300)  # give any injected handler a chance to fire

    mark = page.locator("#passage-1 mark")
    assert mark.text_content() == data["passages"][0]["text"]
    assert "<script>window.__pwned=1</script>" in mark.text_content()
    assert page.get_by_text("<script>window.__pwned=1</script>", exact=False).first.is_visible()
    assert page.locator("#passage-1 .title").text_content() == XSS_TITLE
    assert "<i>evil.example</i>" in page.locator("#passage-1 .meta").text_content()

    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.locator("#results script, #results img, #results b, #results i").count() == 0
