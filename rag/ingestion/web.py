"""URLs to documents: a page is one article; an RSS or Atom feed is every entry's linked article."""

from __future__ import annotations

from dataclasses import dataclass, field

from .documents import Document, DocumentError
from .feeds import FeedEntry, looks_like_feed, parse_feed
from .fetch import Fetched, Fetcher
from .html import decode_html, document_from_html


@dataclass
class UrlDocuments:
    documents: list[Document] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # one sentence per page that could not be read
    feed: bool = False


def page_document(page: Fetched, entry: FeedEntry | None = None, doc_id: str | None = None) -> Document:
    """A fetched page as a document: the feed entry's title and date stand in where the page has none."""
    html = decode_html(page.content, page.url, page.charset)
    return document_from_html(
        html, page.url, doc_id=doc_id, url=page.url,
        title=entry.title if entry else None, published=entry.published if entry else None,
    )


def read_url(url: str, fetcher: Fetcher) -> UrlDocuments:
    """The article at `url`, or, for a feed, each entry's article (a page that fails is a failure
    line, not the end of the others). FetchError/DocumentError when `url` itself cannot be read."""
    fetched = fetcher.get(url)
    if not looks_like_feed(fetched.content_type, fetched.content):
        return UrlDocuments([page_document(fetched)])
    out = UrlDocuments(feed=True)
    for entry in parse_feed(fetched.content, fetched.url, fetched.content_type, fetched.charset).entries:
        try:
            out.documents.append(page_document(fetcher.get(entry.link), entry))
        except DocumentError as exc:
            out.failures.append(str(exc))
    return out


def is_url(text: str) -> bool:
    return text.lower().startswith(("http://", "https://"))
