"""RSS and Atom feeds to entries (rag/ingestion/feeds.py, feedparser)."""

from __future__ import annotations

import pytest

from rag.ingestion.feeds import FeedError, looks_like_feed, parse_feed

from newsserver import atom, rss


def test_rss_entries_with_links_titles_and_normalised_dates():
    data = rss([
        {"title": "Storm floods the coast", "link": "/2022/09/06/storm", "date": "Tue, 06 Sep 2022 14:30:00 +0200"},
        {"title": "Undated brief", "link": "http://site.test/brief"},
    ])
    feed = parse_feed(data, "http://site.test/feed.xml")
    assert feed.title == "The Daily Ledger"
    first, second = feed.entries
    assert first.link == "http://site.test/2022/09/06/storm"  # relative links resolved against the feed
    assert first.title == "Storm floods the coast" and first.published == "2022-09-06T12:30:00Z"
    assert second.published is None


def test_atom_entries_and_signatures_that_change_when_the_entry_does():
    one = parse_feed(atom([{"title": "Budget", "link": "http://w.test/b", "updated": "2022-09-07T09:00:00Z"}]), "u")
    same = parse_feed(atom([{"title": "Budget", "link": "http://w.test/b", "updated": "2022-09-07T09:00:00Z"}]), "u")
    moved = parse_feed(atom([{"title": "Budget", "link": "http://w.test/b", "updated": "2022-09-08T10:00:00Z"}]), "u")
    assert one.entries[0].published == "2022-09-07T09:00:00Z"
    assert one.entries[0].signature == same.entries[0].signature != moved.entries[0].signature


def test_malformed_xml_and_non_feeds_are_feed_errors():
    with pytest.raises(FeedError, match="malformed XML"):
        parse_feed(b'<?xml version="1.0"?><rss version="2.0"><channel><item><title>cut off', "http://s.test/feed")
    with pytest.raises(FeedError, match="not an RSS or Atom feed"):
        parse_feed(b"<html><body><p>hello</p></body></html>", "http://s.test/page")


def test_feeds_are_told_from_pages_by_type_or_root_element():
    assert looks_like_feed("application/rss+xml", b"")
    assert looks_like_feed("application/xml", rss([]))
    assert looks_like_feed("text/plain", atom([]))
    assert not looks_like_feed("text/html", rss([]))
    assert not looks_like_feed("application/xml", b"<?xml version='1.0'?><html><body/></html>")
