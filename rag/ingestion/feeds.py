"""RSS and Atom feeds to their entries (feedparser): each entry's link, title and date.

feedparser reads every RSS and Atom dialect and the date forms feeds write; XML it cannot read
at all is a FeedError, while a feed with a recoverable flaw (a wrong declared charset, say) still
gives its entries.
"""

from __future__ import annotations

import calendar
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urljoin


from .. import dates
from .documents import DocumentError

_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/rdf+xml", "application/xml", "text/xml")
_FEED_ROOT = re.compile(rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:rss|feed|rdf:RDF)[\s>]", re.DOTALL)


class FeedError(DocumentError):
    """A feed that cannot be read; the message names it and says why."""


@dataclass(frozen=True)
class FeedEntry:
    link: str
    title: str | None
    published: str | None  # normalised (rag.dates), or None when the feed gives no readable date
    # Changes when the feed says the entry changed (its id, title, dates or summary).
    signature: str


@dataclass(frozen=True)
class Feed:
    url: str
    title: str | None
    entries: list[FeedEntry]


def looks_like_feed(content_type: str, data: bytes) -> bool:
    """An RSS or Atom document, by its declared type or, for generic XML or none, its root element."""
    if content_type in ("application/rss+xml", "application/atom+xml", "application/rdf+xml"):
        return True
    if content_type in ("text/html", "application/xhtml+xml"):
        return False
    return _FEED_ROOT.match(data[:4096].lstrip(b"\xef\xbb\xbf")) is not None


def parse_feed(data: bytes, url: str, content_type: str | None = None, charset: str | None = None) -> Feed:
    """The entries of a feed, in the feed's order; entries without a link are left out."""
    import feedparser  # 0.2 s to import: only when a feed is read

    headers = {"content-type": f"{content_type or 'application/xml'}" + (f"; charset={charset}" if charset else "")}
    parsed = feedparser.parse(data, response_headers=headers, sanitize_html=False, resolve_relative_uris=False)
    entries = [e for e in (_entry(raw, url) for raw in parsed.entries) if e is not None]
    reason = parsed.get("bozo_exception")
    if parsed.get("bozo") and not entries and not isinstance(reason, feedparser.CharacterEncodingOverride):
        raise FeedError(f"{url}: not a readable RSS or Atom feed (malformed XML: {reason})")
    if not parsed.get("version") and not entries:
        raise FeedError(f"{url}: not an RSS or Atom feed")
    return Feed(url=url, title=_text(parsed.feed.get("title")), entries=entries)


def _entry(raw: dict, feed_url: str) -> FeedEntry | None:
    link = _text(dict.get(raw, "link"))
    if not link:
        return None
    link = urljoin(feed_url, link)
    stated = {k: _text(dict.get(raw, k)) for k in ("id", "title", "published", "updated", "summary")}
    signature = hashlib.sha256(json.dumps([link, stated], sort_keys=True).encode()).hexdigest()
    return FeedEntry(link=link, title=stated["title"], published=_published(raw), signature=signature)


def _published(raw: dict) -> str | None:
    """The entry's publication date (else its update date), normalised to UTC."""
    for key in ("published", "updated", "created"):
        text = _text(dict.get(raw, key))
        if not text:
            continue
        try:
            return dates.normalise(text)
        except dates.DateError:
            parsed = dict.get(raw, f"{key}_parsed")  # feedparser reads forms rag.dates does not
            if parsed:
                when = datetime.fromtimestamp(calendar.timegm(parsed), timezone.utc)
                return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _text(value: object) -> str | None:
    text = " ".join(value.split()) if isinstance(value, str) else ""
    return text or None
