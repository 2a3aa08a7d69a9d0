"""Web pages to documents (rag/ingestion/html.py): the article without the site around it, what
the page states about it, and its declared character set."""

from __future__ import annotations

import pytest

from rag.ingestion.documents import DocumentError, load_path
from rag.ingestion.html import decode_html, declared_charset, document_from_html, extract

from newsserver import BOILERPLATE_PHRASES, BUDGET, STORM, news_page

PAGE = news_page(
    "Storm floods the northern coast", STORM, published="2022-09-06T14:30:00+02:00", author="Jane Reporter",
    canonical="https://ledger.example/2022/09/06/storm",
)


def test_main_text_without_menus_adverts_related_links_or_comments():
    art = extract(PAGE, "page.html")
    for paragraph in STORM:
        assert paragraph in art.text
    assert [p for p in BOILERPLATE_PHRASES if p in art.text] == []


def test_title_date_author_and_canonical_url_as_the_page_states_them():
    art = extract(PAGE, "page.html")
    assert art.title == "Storm floods the northern coast"  # the site's name after " | " is not the title
    assert art.published == "2022-09-06"  # normalised by rag.dates
    assert art.author == "Jane Reporter"
    assert art.url == "https://ledger.example/2022/09/06/storm"


def test_document_keeps_the_extracted_text_and_takes_the_feed_title_and_date_where_the_page_has_none():
    doc = document_from_html(news_page(None, BUDGET), "budget.html", url="http://site.test/budget",
                             title="Budget raises hospital spending", published="Wed, 07 Sep 2022 09:00:00 GMT")
    assert doc.text == extract(news_page(None, BUDGET), "x").text
    assert doc.title == "Budget raises hospital spending"
    assert doc.published == "2022-09-07T09:00:00Z"
    assert doc.source == "http://site.test/budget"
    stated = document_from_html(PAGE, "page.html", url="http://site.test/storm?utm=feed", title="Feed title")
    assert stated.title == "Storm floods the northern coast" and stated.source.startswith("https://ledger.example/")
    # The page states the day; the feed's time of that same day is kept, another day's is not.
    timed = document_from_html(PAGE, "page.html", published="Tue, 06 Sep 2022 12:30:00 GMT")
    assert timed.published == "2022-09-06T12:30:00Z"
    other = document_from_html(PAGE, "page.html", published="Mon, 05 Sep 2022 12:30:00 GMT")
    assert other.published == "2022-09-06"


def test_charset_from_header_then_meta_then_utf8():
    cafe = news_page("Café owners count the damage", ["Le café de la gare a été inondé mardi soir, disent les habitants."] * 3,
                     meta_charset="windows-1252")
    data = cafe.encode("cp1252")
    assert declared_charset(data) == "windows-1252"
    assert "Café" in decode_html(data, "cafe.html")
    # The HTTP header wins over the page's meta tag.
    latin = cafe.replace('charset="windows-1252"', 'charset="utf-8"').encode("latin-1")
    assert "Café" in decode_html(latin, "cafe.html", header_charset="ISO-8859-1")
    # No declaration at all: UTF-8.
    plain = news_page("Naïve résumé", STORM, meta_charset=None).encode("utf-8")
    assert declared_charset(plain) is None and "Naïve" in decode_html(plain, "plain.html")


def test_undecodable_bytes_and_unknown_charsets_are_clear_errors_naming_the_file():
    bad = news_page("Storm", STORM).encode("utf-8").replace(b"powerful", b"power\xff\xfeful")
    with pytest.raises(DocumentError, match=r"storm\.html is not valid utf-8: undecodable byte 0xff at offset \d+"):
        decode_html(bad, "storm.html")
    with pytest.raises(DocumentError, match=r"storm\.html: declares an unknown character set 'klingon-8'"):
        decode_html(news_page("Storm", STORM, meta_charset="klingon-8").encode(), "storm.html")


def test_a_page_without_an_article_is_an_error():
    with pytest.raises(DocumentError, match="empty.html: no article text found"):
        extract("<html><head><title>Nothing here</title></head><body><script>var x = 1;</script></body></html>", "empty.html")


def test_load_path_reads_html_files(tmp_path):
    (tmp_path / "storm.html").write_bytes(PAGE.encode("utf-8"))
    (tmp_path / "budget.htm").write_bytes(news_page("Budget", BUDGET, meta_charset="iso-8859-1").encode("latin-1"))
    docs = {d.id: d for d in load_path(tmp_path)}
    assert set(docs) == {"storm", "budget"}
    assert docs["storm"].source == "https://ledger.example/2022/09/06/storm"  # the canonical URL it states
    assert docs["storm"].published == "2022-09-06" and STORM[0] in docs["storm"].text
    assert docs["storm"].author == "Jane Reporter" and docs["budget"].author is None
    assert docs["budget"].source.endswith("budget.htm") and docs["budget"].title == "Budget"
